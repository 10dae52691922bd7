// errno -> a JS Error shaped like Node's own system errors:
// { code: 'EBADF', errno: -9, syscall: 'close', path?, message: 'EBADF: bad file descriptor, close' }
#ifndef DMA_HEAP_ERRORS_H
#define DMA_HEAP_ERRORS_H

#include <napi.h>

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* path = nullptr,
                       const char* detail = nullptr);

[[noreturn]] inline void ThrowErrno(Napi::Env env, int err, const char* syscall,
                                    const char* path = nullptr, const char* detail = nullptr) {
  throw ErrnoError(env, err, syscall, path, detail);
}

// An argument error made by the package's factory (lib/args.ts) when it is registered:
// kind "type" (ERR_INVALID_ARG_TYPE: `what` must be `expected`), "range" (ERR_OUT_OF_RANGE:
// `expected` is the range), "value" (ERR_INVALID_ARG_VALUE: `expected` is the reason).
Napi::Error ArgError(Napi::Env env, const char* kind, const std::string& what, const std::string& expected,
                     Napi::Value value);

[[noreturn]] inline void ThrowArg(Napi::Env env, const char* kind, const std::string& what,
                                  const std::string& expected, Napi::Value value) {
  throw ArgError(env, kind, what, expected, value);
}

#endif  // DMA_HEAP_ERRORS_H
