// Heap devices (and any device node): open, ioctl, ioctl on the libuv pool.
#include <fcntl.h>
#include <linux/ioctl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"
#include "args.h"
#include "dma_heap_abi.h"

namespace {

// The kernel may write _IOC_SIZE(cmd) bytes; legacy numbers (FIONREAD,
// TCGETS...) encode no size at all yet write a few bytes. Never hand it less
// than a page of scratch; only arg.length bytes are copied back.
constexpr size_t kMinScratch = 4096;

std::vector<uint8_t> Scratch(uint32_t cmd, const Napi::Uint8Array& arg) {
  size_t n = arg.ByteLength();
  std::vector<uint8_t> s(std::max({n, static_cast<size_t>(_IOC_SIZE(cmd)), kMinScratch}));
  if (n) std::memcpy(s.data(), arg.Data(), n);
  return s;
}

// fdAt, when given, is where a successful call returns a new fd in its argument
// (dma-heap ALLOC: byte 8). The addon owns that fd from the moment the ioctl
// returns, so a worker terminated before JS sees it still closes it.
long FdAtArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i && !info[i].IsUndefined() ? static_cast<long>(U32Arg(info, i, "fdAt")) : -1;
}

int ReturnedFd(const std::vector<uint8_t>& scratch, long fd_at) {
  if (fd_at < 0 || static_cast<size_t>(fd_at) + 4 > scratch.size()) return -1;
  uint32_t fd;
  std::memcpy(&fd, scratch.data() + fd_at, sizeof fd);
  return fd > 0 && fd <= INT32_MAX ? static_cast<int>(fd) : -1;
}

void CopyBack(const std::vector<uint8_t>& scratch, Napi::Uint8Array arg) {
  // re-read: for ioctlAsync the buffer may have been detached or shrunk meanwhile
  size_t n = std::min(arg.ByteLength(), scratch.size());
  if (n) std::memcpy(arg.Data(), scratch.data(), n);
}

// The pool thread's ioctl runs on its own dup of the caller's fd (`pinned`), made when the call
// is queued: JS may close the caller's fd meanwhile (heap.close() during allocAsync, buf.close()
// during cpuAccessAsync) and a later open may reuse the number; a raw number would then send
// the ioctl to that other file. The dup holds the file, as the kernel's fdget holds it for a
// syscall in flight. It is this env's (Own) until the pool thread takes and closes it, so a
// worker torn down first still closes it, once.
class IoctlWorker : public Napi::AsyncWorker {
 public:
  IoctlWorker(Napi::Env env, DmaHeapAddon* addon, int pinned, uint32_t cmd, Napi::Uint8Array arg, long fd_at)
      : Napi::AsyncWorker(env, "dma-heap:ioctl"),
        deferred_(Napi::Promise::Deferred::New(env)),
        addon_(addon),
        fd_(pinned),
        cmd_(cmd),
        fd_at_(fd_at),
        scratch_(Scratch(cmd, arg)),
        arg_(Napi::Persistent(arg)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    ret_ = ::ioctl(fd_, cmd_, scratch_.data());
    err_ = ret_ < 0 ? errno : 0;
    if (addon_->TakeOwned(fd_)) ::close(fd_);
    // Own() only touches the process-wide table (mutex-guarded): safe from the pool.
    int made = ret_ < 0 ? -1 : ReturnedFd(scratch_, fd_at_);
    if (made >= 0) addon_->Own(made);
  }
  void OnOK() override {
    Napi::Env env = Env();
    CopyBack(scratch_, arg_.Value());
    if (ret_ < 0)
      deferred_.Reject(ErrnoError(env, err_, "ioctl").Value());
    else
      deferred_.Resolve(Napi::Number::New(env, ret_));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  DmaHeapAddon* addon_;
  int fd_;
  uint32_t cmd_;
  long fd_at_;
  std::vector<uint8_t> scratch_;
  Napi::Reference<Napi::Uint8Array> arg_;
  int ret_ = 0;
  int err_ = 0;
};

}  // namespace

Napi::Value DmaHeapAddon::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = StringArg(info, 0, "path");
  int flags = static_cast<int>(U32Arg(info, 1, "flags"));
  return NewFd(env, ::open(path.c_str(), flags, 0), "open", path.c_str());
}

Napi::Value DmaHeapAddon::Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t cmd = U32Arg(info, 1, "cmd");
  int r;
  if (info[2].IsNull()) {
    r = ::ioctl(fd, cmd, nullptr);
  } else {
    Napi::Uint8Array arg = BytesArg(info, 2, "arg");
    std::vector<uint8_t> scratch = Scratch(cmd, arg);
    r = ::ioctl(fd, cmd, scratch.data());
    int err = errno;
    int made = r < 0 ? -1 : ReturnedFd(scratch, FdAtArg(info, 3));
    if (made >= 0) Own(made);
    CopyBack(scratch, arg);
    errno = err;
  }
  if (r < 0) ThrowErrno(env, errno, "ioctl");
  return Napi::Number::New(env, r);
}

Napi::Value DmaHeapAddon::IoctlAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t cmd = U32Arg(info, 1, "cmd");
  Napi::Uint8Array arg = BytesArg(info, 2, "arg");
  long fd_at = FdAtArg(info, 3);
  // EBADF here is what the ioctl itself would have said of a closed fd
  int pinned = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (pinned < 0) {
    int err = errno;
    ThrowErrno(env, err, err == EBADF ? "ioctl" : "fcntl");
  }
  Own(pinned);
  auto* worker = new IoctlWorker(env, this, pinned, cmd, arg, fd_at);  // deletes itself when done
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// heapAlloc(heapFd, cmd, len, fdFlags) -> the new dma-buf's fd: DMA_HEAP_IOCTL_ALLOC (or the
// v14 number) with the struct on the stack, no scratch copy and no JS-side struct encoding.
// The fd is owned from the moment the ioctl returns, as ioctl()'s fdAt does.
Napi::Value DmaHeapAddon::HeapAlloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint32_t cmd = U32Arg(info, 1, "cmd");
  if (_IOC_SIZE(cmd) != sizeof(dma_heap_abi_allocation_data)) ThrowArg(env, "value", "cmd", "is not an ALLOC ioctl number", info[1]);
  dma_heap_abi_allocation_data data;
  std::memset(&data, 0, sizeof data);
  data.len = SizeArg(info, 2, "len");
  data.fd_flags = U32Arg(info, 3, "fdFlags");
  if (::ioctl(fd, cmd, &data) < 0) ThrowErrno(env, errno, "ioctl");
  int made = data.fd <= INT32_MAX ? static_cast<int>(data.fd) : -1;
  if (made < 0) ThrowErrno(env, EBADF, "ioctl");
  return NewFd(env, made, "ioctl");
}
