// text_codec_for_checkpoint (see text_codec.h).
#include "launcher/text_codec.h"

#include <memory>

#include "core/error.h"
#include "launcher/config_loader.h"
#include "runtime/checkpoint/checkpoint.h"
#include "runtime/data/tokenizer.h"
#include "runtime/data/vocabulary.h"

namespace tessera {

TextCodec text_codec_for_checkpoint(const std::string& step_dir, int64_t model_vocab) {
  const Manifest manifest = read_manifest(step_dir);
  const Config config = parse_config_string(manifest.config_yaml, step_dir + "/manifest.json config");
  if (!config.data.tokenizer.empty()) {
    auto tokenizer = std::make_shared<const Tokenizer>(config.data.tokenizer);
    TESSERA_REQUIRE(tokenizer->vocab_size() == model_vocab, "{}: the tokenizer {} has {} pieces, the model {}",
                    step_dir, config.data.tokenizer, tokenizer->vocab_size(), model_vocab);
    return {"tokenizer " + config.data.tokenizer, [tokenizer](const std::string& s) { return tokenizer->encode(s); },
            [tokenizer](const std::vector<int32_t>& ids) { return tokenizer->decode(ids); }};
  }
  TESSERA_REQUIRE(!manifest.vocabulary.is_null(),
                  "{}: no text form for its token ids (no vocabulary, and its config names no data.tokenizer)",
                  step_dir);
  auto vocab = std::make_shared<const Vocabulary>(Vocabulary::from_json(manifest.vocabulary));
  TESSERA_REQUIRE(vocab->has_text(), "{}: token ids without a text form; train with data.tokenizer to generate text",
                  step_dir);
  return {vocabulary_kind_name(vocab->kind()) + " vocabulary",
          [vocab](const std::string& s) { return vocab->encode(s); },
          [vocab](const std::vector<int32_t>& ids) { return vocab->decode(ids); }};
}

}  // namespace tessera
