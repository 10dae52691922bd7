// Argument conversion: only what memory safety needs. Anything that is not an
// integer where a length, offset or fd is expected is a TypeError; the kernel
// judges everything else.
#ifndef DMA_HEAP_ARGS_H
#define DMA_HEAP_ARGS_H

#include <napi.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <string>

#include "errors.h"

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 - 1

inline double IntegerArg(const Napi::CallbackInfo& info, size_t i, const char* what, double lo,
                         double hi) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) ThrowArg(info.Env(), "type", what, "of type number", v);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::trunc(d) != d || d < lo || d > hi) {
    char range[96];
    std::snprintf(range, sizeof range, "an integer >= %.0f && <= %.0f", lo, hi);
    ThrowArg(info.Env(), "range", what, range, v);
  }
  return d;
}

// fds: any int (negative ones reach the kernel, which says EBADF).
inline int FdArg(const Napi::CallbackInfo& info, size_t i, const char* what = "fd") {
  return static_cast<int>(IntegerArg(info, i, what, INT32_MIN, INT32_MAX));
}

inline int IntArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<int>(IntegerArg(info, i, what, INT32_MIN, INT32_MAX));
}

// ioctl numbers, flags: 32-bit patterns; accepts both 0xC0184800 and its |0 form.
inline uint32_t U32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  double d = IntegerArg(info, i, what, INT32_MIN, UINT32_MAX);
  return d < 0 ? static_cast<uint32_t>(static_cast<int32_t>(d)) : static_cast<uint32_t>(d);
}

// lengths and offsets: non-negative safe integers.
inline uint64_t SizeArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<uint64_t>(IntegerArg(info, i, what, 0, kMaxSafeInteger));
}

inline Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    ThrowArg(info.Env(), "type", what, "an instance of Uint8Array", v);
  return v.As<Napi::Uint8Array>();
}

inline std::string StringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) ThrowArg(info.Env(), "type", what, "of type string", info[i]);
  return info[i].As<Napi::String>().Utf8Value();
}

#endif  // DMA_HEAP_ARGS_H
