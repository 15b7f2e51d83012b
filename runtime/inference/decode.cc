// decode: the new tokens of every sequence go through each layer's GEMMs as one stack of
// rows; each sequence's keys and values are appended to its cache and its queries attend to
// the cache alone.
#include "runtime/inference/decode.h"

#include <algorithm>

#include "kernels/cached_attention.h"
#include "runtime/inference/gpt_math.h"

namespace tessera {

Tensor decode(const InferenceModel& model, const std::vector<KvCache*>& caches,
              const std::vector<std::vector<int32_t>>& new_tokens, const std::vector<bool>& every_row) {
  TESSERA_CHECK(caches.size() == new_tokens.size() && !caches.empty(),
                "decode: {} caches for {} token lists", caches.size(), new_tokens.size());
  TESSERA_CHECK(every_row.empty() || every_row.size() == caches.size(), "decode: {} every_row flags for {} sequences",
                every_row.size(), caches.size());
  const size_t S = caches.size();
  const int64_t A = model.attention_width(), H = model.num_heads(), D = model.head_dim();
  // Row offset of each sequence's new tokens in the stack.
  std::vector<int64_t> first(S + 1, 0);
  for (size_t i = 0; i < S; ++i) {
    const int64_t n = static_cast<int64_t>(new_tokens[i].size());
    TESSERA_CHECK(n >= 1, "decode: sequence {} has no new tokens", i);
    TESSERA_CHECK(caches[i]->length() + n <= caches[i]->capacity(),
                  "decode: sequence {} holds {} tokens, {} more exceed the context of {}", i,
                  caches[i]->length(), n, caches[i]->capacity());
    for (const int32_t t : new_tokens[i]) {
      TESSERA_CHECK(t >= 0 && t < model.vocab_size(), "decode: token {} outside the vocabulary of {}", t,
                    model.vocab_size());
    }
    first[i + 1] = first[i] + n;
  }
  const int64_t N = first[S];
  std::vector<int32_t> tokens(N);
  std::vector<int64_t> positions(N);
  for (size_t i = 0; i < S; ++i) {
    std::copy(new_tokens[i].begin(), new_tokens[i].end(), tokens.begin() + first[i]);
    for (int64_t r = first[i]; r < first[i + 1]; ++r) positions[r] = caches[i]->length() + r - first[i];
  }

  Tensor x = gpt_math::embed(model, tokens.data(), positions.data(), N);
  for (size_t layer = 0; layer < model.blocks().size(); ++layer) {
    const BlockWeights& w = model.blocks()[layer];
    const Tensor qkv = gpt_math::attention_inputs(w, x);
    Tensor att = Tensor::empty({N, A});
    for (size_t i = 0; i < S; ++i) {
      const int64_t past = caches[i]->length(), n = first[i + 1] - first[i];
      const float* rows = qkv.f32() + first[i] * 3 * A;
      float* keys = caches[i]->keys(static_cast<int>(layer));
      float* values = caches[i]->values(static_cast<int>(layer));
      for (int64_t r = 0; r < n; ++r) {
        std::copy_n(rows + r * 3 * A + A, A, keys + (past + r) * A);
        std::copy_n(rows + r * 3 * A + 2 * A, A, values + (past + r) * A);
      }
      kernels::cpu::cached_attention_forward(att.f32() + first[i] * A, A, rows, 3 * A, keys, values, A, n, past,
                                             H, D);
    }
    gpt_math::finish_block(w, x, att, model.tp());
  }
  for (size_t i = 0; i < S; ++i) caches[i]->advance(first[i + 1] - first[i]);
  // Only tp rank 0 samples: the other shards skip the (replicated) head.
  if (model.tp().rank != 0) return Tensor();
  // Only each sequence's last token needs the head, unless it asked for every row.
  std::vector<int64_t> rows;
  for (size_t i = 0; i < S; ++i) {
    for (int64_t r = every_row.empty() || !every_row[i] ? first[i + 1] - 1 : first[i]; r < first[i + 1]; ++r) {
      rows.push_back(r);
    }
  }
  Tensor picked = Tensor::empty({static_cast<int64_t>(rows.size()), model.hidden_size()});
  for (size_t k = 0; k < rows.size(); ++k) picked.narrow(static_cast<int64_t>(k), 1).copy_from(x.narrow(rows[k], 1));
  return gpt_math::logits(model, picked);
}

}  // namespace tessera
