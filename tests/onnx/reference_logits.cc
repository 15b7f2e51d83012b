// Tessera's own logits for the ONNX and Hugging Face parity checks: loads a checkpoint (any layout) into the
// training Model at tp 1 and runs forward on every `tokens.<k>` (I32 [batch, seq]) of a
// safetensors file, writing `logits.<k>` (F32 [batch, seq, vocab]).
// Usage: onnx_reference_logits CHECKPOINT TOKENS.safetensors OUT.safetensors
#include <iostream>

#include "runtime/compute/compute.h"
#include "launcher/config_loader.h"
#include "partitioner/layer_graph.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/data/vocabulary.h"
#include "runtime/io/safetensors.h"
#include "runtime/model/head_layer.h"
#include "runtime/model/model.h"

namespace {

using namespace tessera;

int run(const std::string& checkpoint, const std::string& tokens_path, const std::string& out_path) {
  const std::string step_dir = resolve_checkpoint(checkpoint);
  const Manifest manifest = read_manifest(step_dir);
  const Config config = parse_config_string(manifest.config_yaml, step_dir + "/manifest.json config");
  // A checkpoint imported from Hugging Face has token ids, not a vocabulary: its model.vocab is the size.
  const int64_t vocab = manifest.vocabulary.is_null() ? std::stoll(config.model.vocab)
                                                      : Vocabulary::from_json(manifest.vocabulary).size();
  const LayerGraph graph = build_layer_graph(config.model, vocab, 1);
  Model model(config.model, graph, TpGroup::single(), config.train.seed);
  CheckpointState state;
  state.params = model.parameters();
  load_checkpoint(step_dir, state, 0, 1);
  auto* head = dynamic_cast<HeadLayer*>(model.layers().back().get());
  TESSERA_CHECK(head != nullptr, "the last layer of {} is not the head", step_dir);

  std::map<std::string, Tensor> out;
  for (const auto& [name, tokens] : read_safetensors(tokens_path).tensors) {
    TESSERA_REQUIRE(name.rfind("tokens.", 0) == 0 && tokens.dtype() == DType::I32 && tokens.ndim() == 2,
                    "{}: expected I32 [batch, seq] tensors named tokens.<k>, got '{}'", tokens_path, name);
    const std::unique_ptr<Compute> compute = make_cpu_compute(Precision::FP32);
    MicrobatchContext ctx;
    ctx.compute = compute.get();
    ctx.tokens = tokens;
    ctx.targets = Tensor::zeros(tokens.shape(), DType::I32);  // the loss is computed but unused
    ctx.training = false;
    model.forward(Tensor(), ctx);
    const Tensor& logits = head->last_logits();  // [batch * seq, vocab]: tp 1 has no padding
    out["logits." + name.substr(7)] = logits.clone().view({tokens.dim(0), tokens.dim(1), logits.dim(1)});
  }
  write_safetensors(out_path, out);
  std::cout << "wrote " << out.size() << " logits tensors to " << out_path << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: onnx_reference_logits CHECKPOINT TOKENS.safetensors OUT.safetensors\n";
    return 2;
  }
  try {
    return run(argv[1], argv[2], argv[3]);
  } catch (const std::exception& e) {
    std::cerr << "onnx_reference_logits: error: " << e.what() << "\n";
    return 1;
  }
}
