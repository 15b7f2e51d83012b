// splitmix64 (Steele, Lea and Flood, 2014): the 64-bit mixing function behind Tessera's
// counter-based randomness (batch positions, token sampling) and the tests' value patterns.
// The same bits on every platform and compiler, unlike std:: engines' distributions.
#pragma once

#include <cstdint>

namespace tessera {

// The generator's increment: a stream's state advances by it, splitmix64(state) is the output.
inline constexpr uint64_t kSplitmix64Gamma = 0x9e3779b97f4a7c15ull;

inline uint64_t splitmix64(uint64_t x) {
  x += kSplitmix64Gamma;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace tessera
