// export_onnx: read the consolidated weights, build, check, write.
#include "runtime/export/onnx_export.h"

#include <onnx/checker.h>

#include <filesystem>

#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/checkpoint/durable_file.h"
#include "runtime/export/onnx_external_data.h"
#include "runtime/export/onnx_model.h"

namespace tessera {
namespace fs = std::filesystem;

OnnxExportResult export_onnx(const std::string& step_dir, const std::string& out_path,
                             const OnnxExportOptions& options) {
  constexpr int64_t kProtobufLimit = std::numeric_limits<int32_t>::max();
  TESSERA_REQUIRE(options.external_data_threshold > 0 && options.external_data_threshold <= kProtobufLimit,
                  "export --onnx: the external data threshold must be in [1, {}] bytes (protobuf's limit), not {}",
                  kProtobufLimit, options.external_data_threshold);
  std::map<std::string, Tensor> weights;
  OnnxModelInfo info{step_dir, 0, ""};
  ModelConfig model;
  {
    // Scoped: the reader's shard files are freed before the model is built.
    CheckpointReader reader(step_dir);
    TESSERA_REQUIRE(reader.manifest().model.has_value(),
                    "{}: the manifest has no \"model\" section, so the model's shape is unknown", step_dir);
    model = *reader.manifest().model;
    weights = read_global_parameters(reader);
    info.step = reader.manifest().step;
    info.vocabulary = reader.manifest().vocabulary.dump();
  }
  OnnxExportResult result;
  for (const auto& [name, tensor] : weights) result.parameters += tensor.numel();
  onnx::ModelProto proto = build_onnx_model(model, std::move(weights), info);

  // Checked with the weights inline: the checker of libonnx 1.12 resolves external data
  // against the working directory, and the files do not exist yet.
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    throw Error(fmt::format("the ONNX checker rejects the graph exported from {}: {}", step_dir, e.what()));
  }
  std::string data;
  const std::string data_path = out_path + ".data";
  if (proto.ByteSizeLong() > static_cast<uint64_t>(options.external_data_threshold)) {
    data = move_initializers_to_external_data(proto, fs::path(data_path).filename().string());
    result.data_path = data_path;
    result.data_bytes = data.size();
  }
  std::string bytes;
  TESSERA_CHECK(proto.SerializeToString(&bytes), "cannot serialize the ONNX model of {} ({} bytes)", step_dir,
                proto.ByteSizeLong());
  onnx::ModelProto().Swap(&proto);  // frees the weights' copy before the files are written
  // The data first: the model, renamed into place last, is what makes the export visible.
  if (!result.data_path.empty()) checkpoint_io::write_file_durably(data_path, data);
  checkpoint_io::write_file_durably(out_path, bytes);
  std::error_code ec;
  if (result.data_path.empty()) fs::remove(data_path, ec);  // a previous, larger export's weights
  result.model_bytes = bytes.size();
  return result;
}

}  // namespace tessera
