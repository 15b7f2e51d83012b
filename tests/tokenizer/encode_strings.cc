// Encodes and decodes strings with Tessera's Tokenizer, for the comparison with the Python
// sentencepiece package (check_tokenizer.py). Input: a JSON array of strings; output: a JSON
// array of {"ids": [...], "decoded": "..."}.
// Usage: tessera_encode_strings MODEL IN.json OUT.json
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/data/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: tessera_encode_strings MODEL IN.json OUT.json\n";
    return 2;
  }
  try {
    const tessera::Tokenizer tokenizer(argv[1]);
    std::ifstream in(argv[2]);
    const nlohmann::json strings = nlohmann::json::parse(in);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : strings) {
      const std::vector<int32_t> ids = tokenizer.encode(s.get<std::string>());
      out.push_back({{"ids", ids}, {"decoded", tokenizer.decode(ids)}});
    }
    std::ofstream(argv[3]) << out.dump();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "tessera_encode_strings: error: " << e.what() << "\n";
    return 1;
  }
}
