#include "errors.h"

#include <uv.h>

#include <cstring>
#include <string>

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall, const char* path,
                       const char* detail) {
  // libuv's names are Node's names (uv errors are -errno on Unix); the _r forms
  // don't leak for unknown values.
  char name[64];
  char text[128];
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);
  std::string code = std::strncmp(name, "Unknown", 7) == 0 ? "UNKNOWN" : name;

  std::string message = code + ": " + text;
  if (detail) message += std::string(" (") + detail + ")";
  message += std::string(", ") + syscall;
  if (path) message += std::string(" '") + path + "'";

  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (path) e.Set("path", Napi::String::New(env, path));
  return e;
}
