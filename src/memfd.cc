// memfds: the backing of udmabuf buffers and of the software framework.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"
#include "args.h"
#include "compat.h"

Napi::Value DmaHeapAddon::MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  unsigned flags = U32Arg(info, 1, "flags");
  return NewFd(env, CompatMemfdCreate(name.c_str(), flags), "memfd_create");
}

Napi::Value DmaHeapAddon::Ftruncate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint64_t length = SizeArg(info, 1, "length");
  if (::ftruncate(fd, static_cast<off_t>(length)) != 0) ThrowErrno(env, errno, "ftruncate");
  return env.Undefined();
}

Napi::Value DmaHeapAddon::AddSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int seals = IntArg(info, 1, "seals");
  if (::fcntl(fd, F_ADD_SEALS, seals) != 0) ThrowErrno(env, errno, "fcntl");
  return env.Undefined();
}

Napi::Value DmaHeapAddon::GetSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) ThrowErrno(env, errno, "fcntl");
  return Napi::Number::New(env, seals);
}

// memfdBuffer(name, size, seals): memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate,
// F_ADD_SEALS in one call (the software framework's allocation: one crossing, three syscalls).
Napi::Value DmaHeapAddon::MemfdBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  uint64_t size = SizeArg(info, 1, "size");
  int seals = IntArg(info, 2, "seals");
  int fd = CompatMemfdCreate(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) ThrowErrno(env, errno, "memfd_create");
  const char* failed = nullptr;
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0)
    failed = "ftruncate";
  else if (seals && ::fcntl(fd, F_ADD_SEALS, seals) != 0)
    failed = "fcntl";
  if (failed) {
    int err = errno;
    ::close(fd);
    ThrowErrno(env, err, failed);
  }
  return NewFd(env, fd, "memfd_create");
}
