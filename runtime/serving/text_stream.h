// A generated sequence as text, token by token, for streaming answers and stop strings: each
// token's bytes are appended; a stop string ends the text just before it; and the text that
// is safe to send now holds back what could still turn out to be the start of a stop string,
// or an unfinished UTF-8 character (a bytes vocabulary splits characters over tokens).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace tessera {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop_strings);

  // Appends a token's text. Returns true when a stop string now occurs: the text is cut just
  // before its first occurrence and nothing more may be appended.
  bool append(const std::string& token_text);
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }

  // The text not yet taken that can be sent now (all of it once `final`), marked as taken.
  std::string take_ready(bool final);

 private:
  size_t held_back() const;  // bytes at the end that must wait for more tokens

  std::vector<std::string> stops_;
  std::string text_;
  size_t sent_ = 0;
  bool stopped_ = false;
};

}  // namespace tessera
