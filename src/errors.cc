#include "errors.h"

#include "addon.h"

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

  DmaHeapAddon* addon = env.GetInstanceData<DmaHeapAddon>();
  if (addon && !addon->errorFactory.IsEmpty()) {
    std::string shown = std::string(text) + (detail ? std::string(" (") + detail + ")" : "");
    Napi::Value made = addon->errorFactory.Call(
        {Napi::String::New(env, "errno"), Napi::String::New(env, code), Napi::Number::New(env, -err),
         Napi::String::New(env, syscall), path ? Napi::String::New(env, path) : env.Undefined(),
         Napi::String::New(env, shown)});
    if (made.IsObject()) return Napi::Error(env, made);
  }

  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, -err));
  e.Set("code", Napi::String::New(env, code));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (path) e.Set("path", Napi::String::New(env, path));
  return e;
}

Napi::Error ArgError(Napi::Env env, const char* kind, const std::string& what, const std::string& expected,
                     Napi::Value value) {
  DmaHeapAddon* addon = env.GetInstanceData<DmaHeapAddon>();
  if (addon && !addon->errorFactory.IsEmpty()) {
    Napi::Value made = addon->errorFactory.Call({Napi::String::New(env, kind), Napi::String::New(env, what),
                                                 Napi::String::New(env, expected), value});
    if (made.IsObject()) return Napi::Error(env, made);
  }
  // No factory (the .node loaded on its own): the same words, without the value.
  std::string k = kind;
  const char* code = k == "range" ? "ERR_OUT_OF_RANGE" : k == "value" ? "ERR_INVALID_ARG_VALUE" : "ERR_INVALID_ARG_TYPE";
  std::string message = k == "range"   ? "The value of \"" + what + "\" is out of range. It must be " + expected + "."
                        : k == "value" ? "The argument '" + what + "' " + expected + "."
                                       : "The \"" + what + "\" argument must be " + expected + ".";
  Napi::Error e = k == "range" ? Napi::Error(env, Napi::RangeError::New(env, message).Value())
                               : Napi::Error(env, Napi::TypeError::New(env, message).Value());
  e.Set("code", Napi::String::New(env, code));
  return e;
}
