// CPU float32 <-> bfloat16/float16 casts. With AVX-512 BF16 / F16C (Zen 4+, Sapphire Rapids)
// one instruction converts 16 values; the scalar paths are the reference and the fallback.
#include "kernels/cast.h"

// GCC 12 reports its own AVX-512 conversion intrinsics as maybe-uninitialized (`__Y = __Y`).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/common.h"

namespace tessera::kernels::cpu {
namespace {

uint16_t bf16_from_f32(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest, ties to even
  return static_cast<uint16_t>(bits >> 16);
}

float f32_from_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Elementwise casts are memory-bound: split over threads only for large buffers.
template <class Fn>
void for_chunks(int64_t n, Fn&& fn) {
  detail::parallel_ranges(n, detail::threads_for(n), fn);
}

#if !defined(__F16C__)
// IEEE binary16 by bit manipulation, for CPUs built without F16C.
uint16_t f16_from_f32(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;                  // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;                 // rounds to >= 65520: inf
  if (abs < 0x33000001u) return sign;                            // below half the smallest subnormal
  int exp = static_cast<int>(abs >> 23) - 127 + 15;
  uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
  const int shift = exp > 0 ? 13 : 14 - exp;                     // subnormals shift further
  const uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
  uint32_t h = mant >> shift;
  if (rest > half || (rest == half && (h & 1u))) ++h;            // nearest, ties to even
  if (exp > 0) h = (static_cast<uint32_t>(exp) << 10) + (h - 0x400u);  // carries into the exponent
  return sign | static_cast<uint16_t>(h);
}

float f32_from_f16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const int exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ffu;
  float f;
  if (exp == 0x1f) {
    const uint32_t bits = sign | 0x7f800000u | (mant << 13);
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  f = exp == 0 ? std::ldexp(static_cast<float>(mant), -24) : std::ldexp(static_cast<float>(mant | 0x400u), exp - 25);
  return sign ? -f : f;
}
#else
uint16_t f16_from_f32(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
float f32_from_f16(uint16_t h) { return _cvtsh_ss(h); }
#endif

}  // namespace

void cast_f32_to_bf16(uint16_t* out, const float* inp, int64_t n) {
  for_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
#if defined(__AVX512BF16__)
    // vcvtneps2bf16 rounds to nearest even and keeps NaNs, like the scalar path.
    for (; i + 16 <= end; i += 16) {
      const __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(inp + i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), reinterpret_cast<const __m256i&>(v));
    }
#endif
    for (; i < end; ++i) out[i] = bf16_from_f32(inp[i]);
  });
}

void cast_bf16_to_f32(float* out, const uint16_t* inp, int64_t n) {
  for_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
#if defined(__AVX512F__)
    for (; i + 16 <= end; i += 16) {
      const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(inp + i)));
      _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
    }
#endif
    for (; i < end; ++i) out[i] = f32_from_bf16(inp[i]);
  });
}

void cast_f32_to_f16(uint16_t* out, const float* inp, int64_t n) {
  for_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
#if defined(__AVX512F__)
    for (; i + 16 <= end; i += 16) {
      const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(inp + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
    }
#endif
    for (; i < end; ++i) out[i] = f16_from_f32(inp[i]);
  });
}

void cast_f16_to_f32(float* out, const uint16_t* inp, int64_t n) {
  for_chunks(n, [&](int64_t begin, int64_t end) {
    int64_t i = begin;
#if defined(__AVX512F__)
    for (; i + 16 <= end; i += 16) {
      _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(inp + i))));
    }
#endif
    for (; i < end; ++i) out[i] = f32_from_f16(inp[i]);
  });
}

void cast_f32_to_half(Half format, uint16_t* out, const float* inp, int64_t n) {
  if (format == Half::BF16) return cast_f32_to_bf16(out, inp, n);
  cast_f32_to_f16(out, inp, n);
}

void round_to_half(Half format, float* x, int64_t n) {
  constexpr int64_t kChunk = 512;  // through a stack buffer: no allocation per call
  uint16_t bits[kChunk];
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = std::min(kChunk, n - i);
    cast_f32_to_half(format, bits, x + i, m);
    if (format == Half::BF16) {
      cast_bf16_to_f32(x + i, bits, m);
    } else {
      cast_f16_to_f32(x + i, bits, m);
    }
  }
}

}  // namespace tessera::kernels::cpu
