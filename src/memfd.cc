// memfds: the backing of udmabuf buffers and of the software framework.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "compat.h"
#include "dma_heap_abi.h"

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

namespace {

// memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate(size), F_ADD_SEALS(seals): the fd, not
// yet owned; on failure it is closed and the failing syscall's errno thrown.
int SealedMemfd(Napi::Env env, const std::string& name, uint64_t size, int seals) {
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
  return fd;
}

}  // namespace

// memfdBuffer(name, size, seals): memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate,
// F_ADD_SEALS in one call (the software framework's allocation: one crossing, three syscalls).
Napi::Value DmaHeapAddon::MemfdBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = StringArg(info, 0, "name");
  uint64_t size = SizeArg(info, 1, "size");
  int seals = IntArg(info, 2, "seals");
  return NewFd(env, SealedMemfd(env, name, size, seals), "memfd_create");
}

// udmabufBuffer(udmabufFd, name, size, cloexec) -> a udmabuf dma-buf's fd: its memfd made
// (memfd_create with sealing, ftruncate, F_SEAL_SHRINK, which udmabuf requires; F_SEAL_WRITE it
// refuses), turned into a dma-buf by UDMABUF_CREATE on the held /dev/udmabuf fd, then closed:
// the dma-buf holds its pages. One crossing and C's five syscalls, and the new fd is this env's
// from the moment the ioctl returns (a worker terminated in between cannot leak it).
Napi::Value DmaHeapAddon::UdmabufBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int dev = FdArg(info, 0);
  std::string name = StringArg(info, 1, "name");
  uint64_t size = SizeArg(info, 2, "size");
  bool cloexec = info[3].ToBoolean();
  int memfd = SealedMemfd(env, name, size, F_SEAL_SHRINK);
  dma_heap_abi_udmabuf_create create;
  std::memset(&create, 0, sizeof create);
  create.memfd = static_cast<uint32_t>(memfd);
  create.flags = cloexec ? DMA_HEAP_ABI_UDMABUF_FLAGS_CLOEXEC : 0;
  create.size = size;
  int made = ::ioctl(dev, DMA_HEAP_ABI_UDMABUF_CREATE, &create);
  int err = errno;
  ::close(memfd);
  if (made < 0) ThrowErrno(env, err, "ioctl");
  return NewFd(env, made, "ioctl");
}
