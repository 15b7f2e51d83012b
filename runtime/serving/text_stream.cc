// TextStream: stop strings searched only where a new one can start (the last longest-stop - 1
// bytes before the new token onwards), hold-back as the longest stop-string prefix at the end.
#include "runtime/serving/text_stream.h"

#include <algorithm>

#include "core/error.h"

namespace tessera {
namespace {

// Bytes of an unfinished UTF-8 character at the end of `text` (0 when it ends cleanly).
size_t unfinished_utf8(const std::string& text) {
  const size_t n = text.size();
  for (size_t back = 1; back <= std::min<size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(text[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    size_t length = 1;
    if ((c & 0xE0) == 0xC0) length = 2;
    if ((c & 0xF0) == 0xE0) length = 3;
    if ((c & 0xF8) == 0xF0) length = 4;
    return length > back ? back : 0;
  }
  return 0;
}

}  // namespace

TextStream::TextStream(std::vector<std::string> stop_strings) : stops_(std::move(stop_strings)) {
  for (const std::string& s : stops_) TESSERA_CHECK(!s.empty(), "a stop string must not be empty");
}

bool TextStream::append(const std::string& token_text) {
  TESSERA_CHECK(!stopped_, "text appended after a stop string");
  size_t longest = 0;
  for (const std::string& s : stops_) longest = std::max(longest, s.size());
  const size_t from = text_.size() > longest ? text_.size() - longest + 1 : 0;
  text_ += token_text;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, text_.find(s, from));
  if (cut == std::string::npos) return false;
  text_.resize(cut);
  sent_ = std::min(sent_, cut);
  stopped_ = true;
  return true;
}

size_t TextStream::held_back() const {
  size_t hold = 0;
  for (const std::string& s : stops_) {
    // The longest proper prefix of s that ends the text.
    for (size_t k = std::min(s.size() - 1, text_.size()); k > hold; --k) {
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return std::max(hold, unfinished_utf8(text_));
}

std::string TextStream::take_ready(bool final) {
  const size_t end = final || stopped_ ? text_.size() : text_.size() - held_back();
  if (end <= sent_) return {};
  std::string ready = text_.substr(sent_, end - sent_);
  sent_ = end;
  return ready;
}

}  // namespace tessera
