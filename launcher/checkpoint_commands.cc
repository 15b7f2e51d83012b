// `tessera inspect`, `tessera export` (safetensors, ONNX or Hugging Face) and `tessera reshard`: offline tools
// over checkpoints.
#include <iostream>

#include "launcher/commands.h"
#include "launcher/config_loader.h"
#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/data/vocabulary.h"
#include "runtime/export/onnx_export.h"
#include "runtime/export/onnx_model.h"
#include "runtime/interop/hf_export.h"
#include "runtime/train/trainer.h"

namespace tessera {

int run_inspect(const std::string& path) {
  std::cout << inspect_checkpoint(resolve_checkpoint(path));
  return 0;
}

int run_export(const ExportCommandOptions& o) {
  if (!o.safetensors.empty() + !o.onnx.empty() + !o.hf.empty() != 1) {
    throw UsageError("export: give exactly one of --safetensors FILE, --onnx FILE and --hf DIR");
  }
  if (o.nanogpt_names && o.safetensors.empty()) throw UsageError("export: --nanogpt-names applies to --safetensors only");
  if (o.dtype != "fp32" && o.safetensors.empty()) throw UsageError("export: --dtype applies to --safetensors only");
  if (o.external_data_threshold != 0 && o.onnx.empty()) {
    throw UsageError("export: --external-data-threshold applies to --onnx only");
  }
  const std::string step_dir = resolve_checkpoint(o.checkpoint);
  if (!o.hf.empty()) {
    // The run's tokenizer, when it had one, goes with the model.
    const Manifest manifest = read_manifest(step_dir);
    const std::string tokenizer =
        parse_config_string(manifest.config_yaml, step_dir + "/manifest.json config").data.tokenizer;
    const HfExportResult r = export_hf(step_dir, o.hf, tokenizer);
    std::cout << "exported " << step_dir << " to " << o.hf << " (" << r.architecture << ", " << r.tensors
              << " tensors" << (r.tokenizer ? ", tokenizer " + tokenizer : std::string()) << ")\n";
    return 0;
  }
  if (!o.safetensors.empty()) {
    ExportOptions options;
    if (o.nanogpt_names) options.transformer_prefix = "transformer.";
    options.bf16 = o.dtype == "bf16";
    export_consolidated(step_dir, o.safetensors, options);
    std::cout << "exported " << step_dir << " to " << o.safetensors << "\n";
    return 0;
  }
  OnnxExportOptions options;
  if (o.external_data_threshold > 0) options.external_data_threshold = o.external_data_threshold;
  const OnnxExportResult r = export_onnx(step_dir, o.onnx, options);
  std::cout << "exported " << step_dir << " to " << o.onnx << " (ONNX opset " << kOnnxOpset << ", "
            << r.parameters << " parameters, " << r.model_bytes << " bytes";
  if (!r.data_path.empty()) std::cout << "; weights in " << r.data_path << ", " << r.data_bytes << " bytes";
  std::cout << ")\n";
  return 0;
}

int run_reshard(const std::string& path, const std::string& out, const std::vector<std::string>& overrides) {
  const std::string step_dir = resolve_checkpoint(path);
  const Manifest manifest = read_manifest(step_dir);
  const Config config = parse_config_string(manifest.config_yaml, step_dir + "/manifest.json config", overrides);
  const ParallelConfig& p = config.parallel;
  const int64_t vocab = Vocabulary::from_json(manifest.vocabulary).size();
  const LayerGraph graph = build_layer_graph(config.model, vocab, config.train.micro_batch_size);
  const std::vector<int> counts = stage_partition(p, graph);
  const std::vector<int> rank_of_layer = pipeline_rank_of_layers(counts, p.pipeline_model_parallel_size);
  const auto stage_of = [&](const std::string& name) {
    const int layer = layer_of_parameter(graph, name);
    TESSERA_REQUIRE(layer >= 0, "{}: parameter {} belongs to no layer of the model", step_dir, name);
    return rank_of_layer.at(layer);
  };
  CheckpointLayout layout;
  layout.tp = p.tensor_model_parallel_size;
  layout.pp = p.pipeline_model_parallel_size;
  layout.dp = p.data_parallel_size > 0 ? p.data_parallel_size : 1;
  layout.zero_stage = p.zero_stage;
  const SaveResult r = reshard_checkpoint(step_dir, out, layout, stage_of);
  std::cout << "resharded " << step_dir << " (tp " << manifest.layout.tp << ", pp " << manifest.layout.pp
            << ") to " << r.step_dir << " (tp " << layout.tp << ", pp " << layout.pp << ")\n";
  return 0;
}

}  // namespace tessera
