// `tessera import --hf DIR -o CKPT`: a Hugging Face model directory on disk (config.json and
// model.safetensors, as transformers' save_pretrained writes them for GPT2LMHeadModel or
// LlamaForCausalLM) as a Tessera checkpoint, saved under one rank's layout at step 0, that
// training continues from under any layout (init.from) and generate/export read.
#pragma once

#include <string>

#include "runtime/checkpoint/checkpoint.h"
#include "runtime/interop/hf_tensors.h"

namespace tessera {

// The directory's config.json as a Tessera model (InputError naming the file otherwise).
HfModel read_hf_config(const std::string& hf_dir);

// Reads and checks every tensor (InputError naming the file and the first missing, unexpected
// or misshapen tensor, with nothing written), then saves the checkpoint into out_dir with
// `config_yaml` as its config. F32 and BF16 weights are read (BF16 widened exactly).
SaveResult import_hf(const std::string& hf_dir, const std::string& out_dir, const std::string& config_yaml);

}  // namespace tessera
