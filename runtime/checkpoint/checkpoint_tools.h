// Offline checkpoint tools behind the CLI: `tessera inspect` (a readable summary),
// `tessera export --safetensors` (one consolidated file of unpadded global tensors) and
// `tessera reshard` (rewrite a checkpoint for another layout). No communicator needed.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "runtime/checkpoint/checkpoint.h"

namespace tessera {

// A step directory (holding manifest.json) as is; a checkpoint directory resolves to its
// newest complete checkpoint. InputError when neither is found.
std::string resolve_checkpoint(const std::string& path);

// Format version, step, optimizer steps, layout, vocabulary, files, and every tensor with its
// global shape (and real rows when padded), shard spec and pipeline stage; then the config.
std::string inspect_checkpoint(const std::string& step_dir);

// Every parameter as its global, unpadded F32 tensor (vocabulary tables cut to their real
// rows), by checkpoint name, without optimizer state: what export writes and inference loads.
std::map<std::string, Tensor> read_global_parameters(CheckpointReader& reader);

struct ExportOptions {
  // Prepended to every name but lm_head.weight ("transformer." gives the keys of nanoGPT's
  // own GPT module); empty keeps the checkpoint's names (wte.weight, h.0.attn.c_attn.weight, ...).
  std::string transformer_prefix;
  // Write BF16 tensors (rounded to nearest even from the fp32 masters) instead of F32.
  bool bf16 = false;
};
// Writes one safetensors file holding every parameter as its global, unpadded F32 tensor
// (vocabulary tables cut to their real rows), no optimizer state, with __metadata__
// {format: pt, step, config_yaml, vocabulary}. Readable by the Python safetensors package.
void export_consolidated(const std::string& step_dir, const std::string& out_path,
                         const ExportOptions& options = {});

// Rewrites the checkpoint at `step_dir` as <out_dir>/step_<N>/ (with `latest`) saved under
// the sizes of `layout` (dp, tp, pp, zero_stage; ranks ignored), putting each parameter in
// pipeline stage stage_of(name). Vocabulary tables are re-padded for the new tp. Everything
// else (step, config, vocabulary, extra) is kept.
SaveResult reshard_checkpoint(const std::string& step_dir, const std::string& out_dir,
                              const CheckpointLayout& layout,
                              const std::function<int(const std::string&)>& stage_of);

}  // namespace tessera
