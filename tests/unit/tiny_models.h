// The tiny GPT shape shared by unit and MPI tests: 2 blocks, width 32, 4 heads (so tp 2 and 4
// both divide it), small enough that every test can afford exhaustive checks.
#pragma once

#include "core/config.h"

namespace tessera {

inline ModelConfig tiny_gpt_config(int seq_length = 16) {
  ModelConfig m;
  m.arch = "gpt";
  m.num_layers = 2;
  m.hidden_size = 32;
  m.num_attention_heads = 4;
  m.ffn_hidden_size = 64;
  m.seq_length = seq_length;
  return m;
}

}  // namespace tessera
