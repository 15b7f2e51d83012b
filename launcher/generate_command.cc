// `tessera generate`: load, encode the prompt, generate, decode; timings on stderr so that
// stdout is exactly the text.
#include "launcher/generate_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>

#include "launcher/text_codec.h"
#include "runtime/checkpoint/checkpoint_tools.h"
#include "runtime/inference/generate.h"
#include "runtime/inference/llama_inference.h"
#include "runtime/serving/llama_sequence_model.h"
#include "runtime/serving/sequence_generate.h"

namespace tessera {
namespace {

// CLI11's NonNegativeNumber reports its range as "0 to 1.797e308"; this says the rule.
template <typename T>
CLI::Validator non_negative(const std::string& what) {
  return CLI::Validator(
      [what](std::string& text) {
        T value{};
        if (CLI::detail::lexical_cast(text, value) && value >= 0) return std::string();
        return fmt::format("must be {} >= 0, not {}", what, text);
      },
      "NONNEGATIVE");
}

bool is_llama_checkpoint(const std::string& step_dir) {
  const Manifest manifest = read_manifest(step_dir);
  return manifest.model.has_value() && manifest.model->arch == "llama";
}

}  // namespace

CLI::App* add_generate_command(CLI::App& app, GenerateOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "generate", "Sample text from a GPT or Llama checkpoint: the prompt and its continuation to stdout, timings to stderr");
  cmd->add_option("checkpoint", o.checkpoint, "Checkpoint step directory, or a checkpoint.dir for its newest")
      ->required();
  cmd->add_option("--prompt", o.prompt,
                  "Text to continue, every character in the checkpoint's vocabulary (default: a newline, as nanoGPT)");
  cmd->add_option("--max-tokens", o.max_tokens, "Tokens to generate")
      ->check(non_negative<int>("an integer"))
      ->capture_default_str();
  cmd->add_option("--temperature", o.temperature, "Softmax temperature; 0 picks the most likely token")
      ->check(non_negative<float>("a number"))
      ->capture_default_str();
  cmd->add_option("--top-k", o.top_k, "Sample among the k most likely tokens only (0: all)")
      ->check(non_negative<int>("an integer"))
      ->capture_default_str();
  cmd->add_option("--seed", o.seed, "Random seed: the same seed gives the same text")->capture_default_str();
  cmd->add_flag("--greedy", o.greedy, "Always pick the most likely token (same as --temperature 0)");
  cmd->add_flag("--no-cache", o.no_cache, "Recompute the whole context for every token (slow; the KV cache's baseline)");
  return cmd;
}

int run_generate(const GenerateOptions& o) {
  const std::string step_dir = resolve_checkpoint(o.checkpoint);
  const bool llama = is_llama_checkpoint(step_dir);
  TESSERA_REQUIRE(!(llama && o.no_cache), "--no-cache: llama checkpoints always generate with the KV cache");
  std::unique_ptr<InferenceModel> gpt;
  std::unique_ptr<LlamaInferenceModel> llama_model;
  int64_t vocab_size = 0, context = 0;
  if (llama) {
    llama_model = std::make_unique<LlamaInferenceModel>(LlamaInferenceModel::load(step_dir));
    vocab_size = llama_model->vocab_size();
    context = llama_model->context_length();
  } else {
    gpt = std::make_unique<InferenceModel>(InferenceModel::load(step_dir));
    vocab_size = gpt->vocab_size();
    context = gpt->context_length();
  }
  const TextCodec codec = text_codec_for_checkpoint(step_dir, vocab_size);
  std::vector<int32_t> prompt;
  try {
    prompt = codec.encode(o.prompt);
  } catch (const InputError& e) {
    throw InputError(fmt::format("--prompt: {}", e.what()));
  }
  TESSERA_REQUIRE(!prompt.empty(), "--prompt: empty; give at least one character");
  SamplingOptions sampling;
  sampling.temperature = o.greedy ? 0.0f : o.temperature;
  sampling.top_k = o.top_k;
  GenerationResult r;
  if (llama) {
    r = generate_sequence(LlamaSequenceModel(*llama_model), prompt, o.max_tokens, sampling, o.seed);
  } else {
    r = o.no_cache ? generate_uncached(*gpt, prompt, o.max_tokens, sampling, o.seed)
                   : generate(*gpt, prompt, o.max_tokens, sampling, o.seed);
  }
  std::cout << codec.decode(r.tokens) << std::endl;
  const int64_t generated = static_cast<int64_t>(r.tokens.size() - prompt.size());
  // The first generated token comes from the prefill; the rest from the decode steps.
  const int64_t decoded = std::max<int64_t>(0, generated - 1);
  std::cerr << fmt::format("generate: prefill {} tokens in {:.1f} ms; decode {} tokens in {:.1f} ms ({:.1f} tokens/s){}\n",
                           std::min<int64_t>(prompt.size(), context), r.prefill_ms, decoded,
                           r.decode_ms, decoded > 0 ? decoded / (r.decode_ms / 1000.0) : 0.0,
                           o.no_cache ? ", no KV cache" : "");
  return 0;
}

}  // namespace tessera
