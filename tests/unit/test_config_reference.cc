// The generated config reference (docs/configuration.md): every schema key documented with
// its type, default and rule, and no description left for a key the schema lost.
#include <catch2/catch.hpp>

#include "launcher/config_reference.h"
#include "launcher/config_schema.h"

using namespace tessera;

TEST_CASE("every schema key has a type and a meaning", "[config_reference]") {
  CHECK(config::undocumented_keys() == std::vector<std::string>{});
  CHECK(config::stale_descriptions() == std::vector<std::string>{});
}

TEST_CASE("the reference has one row per schema key with its type, default and rule", "[config_reference]") {
  const std::string md = config::reference_markdown();
  for (const auto& f : config::schema()) {
    const std::string leaf = f.key.substr(f.key.rfind('.') + 1);
    INFO(f.key);
    CHECK(md.find("| `" + leaf + "` | " + f.type + " | ") != std::string::npos);
  }
  CHECK(md.starts_with("### `model`\n\n| key | type | default | rule | meaning |\n|---|---|---|---|---|\n"
                       "| `arch` | choice | `gpt` | must be one of gpt, llama, mlp | "));
  CHECK(md.find("| `max_steps` | integer | `2000` | must be a positive integer | ") != std::string::npos);
  CHECK(md.find("| `data_parallel_size` | integer or auto | `auto` | ") != std::string::npos);
  CHECK(md.find("| `betas` | list of 2 numbers | `[0.9, 0.99]` | ") != std::string::npos);
  CHECK(md.find("| `dir` | path or null | `null` | must be a path, or null for none | ") != std::string::npos);
  CHECK(md.find("\n### `train.optimizer`\n") != std::string::npos);
  // A '|' inside a cell would split the table row.
  CHECK(md.find("(`\\| skipped N` in the step line)") != std::string::npos);
}
