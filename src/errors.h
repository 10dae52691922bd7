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

[[noreturn]] inline void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

#endif  // DMA_HEAP_ERRORS_H
