// The config reference of docs/configuration.md, generated from the validator's own schema
// (launcher/config_schema.h: every key, its type, default and rule) plus one sentence or
// more per key saying what it does. `tessera config --markdown` prints it; a docs test fails
// when the page and this text differ.
#pragma once

#include <string>
#include <vector>

namespace tessera::config {

// One "### `section`" table per config section, in schema order: key, type, default (of an
// empty config), rule, meaning.
std::string reference_markdown();

// Schema keys that have no description here, and descriptions of keys the schema does not
// have (both empty when the reference is complete).
std::vector<std::string> undocumented_keys();
std::vector<std::string> stale_descriptions();

}  // namespace tessera::config
