// dma-buf fds (and any mappable fd): mmap/munmap as external ArrayBuffers,
// transient copies, lseek, dup, close.
#include "dma_buf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "addon.h"
#include "args.h"
#include "compat.h"

bool Mapping::Unmap() {
  if (!mapped.exchange(false)) return false;
  ::munmap(addr, length);
  return true;
}

MapRegistry::~MapRegistry() {
  for (auto& entry : live_) entry.second->Unmap();
}

void MapRegistry::Add(const std::shared_ptr<Mapping>& m) {
  std::lock_guard<std::mutex> lock(mu_);
  live_[m->addr] = m;
}

std::shared_ptr<Mapping> MapRegistry::Find(void* addr) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(addr);
  return it == live_.end() ? nullptr : it->second;
}

bool MapRegistry::Release(const std::shared_ptr<Mapping>& m) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(m->addr);
    if (it != live_.end() && it->second == m) live_.erase(it);
  }
  return m->Unmap();
}

namespace {

// Marks ArrayBuffers made by mmap(), so munmap() can refuse any other.
const napi_type_tag kMappingTag = {0x646d612d68656170ULL, 0x6d617070696e6721ULL};

// The ArrayBuffer was collected (or its env is going away). The hint is a
// heap-held reference to the record; the instance data may already be gone.
void FinalizeMapping(napi_env /*env*/, void* /*data*/, void* hint) {
  std::unique_ptr<std::shared_ptr<Mapping>> holder(static_cast<std::shared_ptr<Mapping>*>(hint));
  const std::shared_ptr<Mapping>& m = *holder;
  if (std::shared_ptr<MapRegistry> reg = m->registry.lock())
    reg->Release(m);
  else
    m->Unmap();  // teardown already did it: a no-op
}

uint64_t PageSizeU64() { return static_cast<uint64_t>(sysconf(_SC_PAGESIZE)); }

// A MAP_SHARED page wholly past the end of a regular file (a memfd) raises
// SIGBUS on access: refuse such ranges. dma-bufs refuse them themselves (EINVAL).
void CheckExtent(Napi::Env env, int fd, uint64_t offset, uint64_t length, const char* syscall) {
  if (length > SIZE_MAX) ThrowErrno(env, ENOMEM, syscall);
  struct stat st;
  if (CompatFstat(fd, &st) != 0) ThrowErrno(env, errno, syscall);
  if (!S_ISREG(st.st_mode)) return;
  uint64_t page = PageSizeU64();
  uint64_t end = (static_cast<uint64_t>(st.st_size) + page - 1) / page * page;
  if (offset > end || length > end - offset)
    ThrowErrno(env, EINVAL, syscall, nullptr, "range beyond the end of the file");
}

// mmap [offset, offset + bytes.length) briefly and copy; nothing escapes.
void CopyMapped(const Napi::CallbackInfo& info, bool write) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint64_t offset = SizeArg(info, 1, "offset");
  Napi::Uint8Array bytes = BytesArg(info, 2, write ? "src" : "dst");
  size_t n = bytes.ByteLength();
  if (n == 0) return;
  CheckExtent(env, fd, offset, n, "mmap");
  uint64_t base = offset / PageSizeU64() * PageSizeU64();
  size_t span = static_cast<size_t>(offset - base) + n;
  int prot = write ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, span, prot, MAP_SHARED, fd, static_cast<off_t>(base));
  if (p == MAP_FAILED) ThrowErrno(env, errno, "mmap");
  char* at = static_cast<char*>(p) + (offset - base);
  if (write)
    std::memcpy(at, bytes.Data(), n);
  else
    std::memcpy(bytes.Data(), at, n);
  ::munmap(p, span);
}

}  // namespace

Napi::Value DmaHeapAddon::Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  uint64_t length = SizeArg(info, 1, "length");
  uint64_t offset = SizeArg(info, 2, "offset");
  // V8 has no read-only ArrayBuffer: a JS write to PROT_READ pages would kill the
  // process. Read-only memory is reached through readMapped instead.
  if (!info[3].ToBoolean()) {
    Napi::TypeError e = Napi::TypeError::New(
        env, "a read-only mapping can't be exposed as an ArrayBuffer (a write would fault): use readMapped");
    e.Set("code", Napi::String::New(env, "ERR_DMA_HEAP_READ_ONLY_MAPPING"));
    throw e;
  }
  // sizeKnown: the caller vouches the range lies within a file that cannot shrink (a dma-buf,
  // whose own mmap refuses what lies beyond it, or a memfd sealed F_SEAL_SHRINK of that size),
  // which saves the fstat.
  if (info.Length() > 4 && info[4].ToBoolean()) {
    if (length > SIZE_MAX) ThrowErrno(env, ENOMEM, "mmap");
  } else {
    CheckExtent(env, fd, offset, length, "mmap");
  }

  void* addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) ThrowErrno(env, errno, "mmap");

  auto m = std::make_shared<Mapping>(addr, static_cast<size_t>(length), maps_);
  auto* hint = new std::shared_ptr<Mapping>(m);
  napi_value ab;
  napi_status status = napi_create_external_arraybuffer(env, addr, m->length, FinalizeMapping, hint, &ab);
  if (status != napi_ok) {
    m->Unmap();
    if (status == napi_no_external_buffers_allowed) {
      delete hint;  // refused up front: the finalizer will never run
      Napi::Error e = Napi::Error::New(
          env, "this runtime does not allow external ArrayBuffers (V8 sandbox), so mapped memory can't be exposed");
      e.Set("code", Napi::String::New(env, "ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS"));
      e.Set("syscall", Napi::String::New(env, "mmap"));
      throw e;
    }
    // Other failures (e.g. longer than Buffer's maximum) may or may not have
    // handed the hint to a finalizer: leak it rather than risk a double free.
    throw Napi::Error::New(env);
  }
  // No napi_adjust_external_memory: V8 already counts an external ArrayBuffer's
  // length as external memory (measured on Node 20: adjusting doubled the count).
  maps_->Add(m);
  if (napi_type_tag_object(env, ab, &kMappingTag) != napi_ok) {
    napi_detach_arraybuffer(env, ab);
    maps_->Release(m);
    throw Napi::Error::New(env);
  }
  return Napi::Value(env, ab);
}

Napi::Value DmaHeapAddon::Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ours = false;
  if (info[0].IsArrayBuffer()) napi_check_object_type_tag(env, info[0], &kMappingTag, &ours);
  if (!ours) ThrowArg(env, "value", "buffer", "is not an ArrayBuffer returned by mmap()", info[0]);
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return env.Undefined();  // unmapped already
  std::shared_ptr<Mapping> m = maps_->Find(ab.Data());
  ab.Detach();  // before the pages go: every view now reads as length 0
  if (m) maps_->Release(m);
  return env.Undefined();
}

// closeMapped's first half: munmap `mapping` (argument 1, optional), detaching every view.
void DmaHeapAddon::UnmapArg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || info[1].IsUndefined() || info[1].IsNull()) return;
  bool ours = false;
  if (info[1].IsArrayBuffer()) napi_check_object_type_tag(env, info[1], &kMappingTag, &ours);
  if (!ours) ThrowArg(env, "value", "buffer", "is not an ArrayBuffer returned by mmap()", info[1]);
  Napi::ArrayBuffer ab = info[1].As<Napi::ArrayBuffer>();
  if (ab.IsDetached()) return;
  std::shared_ptr<Mapping> m = maps_->Find(ab.Data());
  ab.Detach();
  if (m) maps_->Release(m);
}

// closeMapped(fd, mapping?): munmap (detaching every view) then close, in one crossing.
Napi::Value DmaHeapAddon::CloseMapped(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  UnmapArg(info);
  Disown(fd);
  if (::close(fd) != 0) ThrowErrno(env, errno, "close");
  return env.Undefined();
}

namespace {

// The close of a buffer's last fd is where the kernel frees its pages (dma_buf_release, the
// heap's free; a memfd's shmem truncate): milliseconds for tens of MiB, more under TCG. Here it
// runs on the libuv pool, so the event loop never waits for it.
class CloseWorker : public Napi::AsyncWorker {
 public:
  CloseWorker(Napi::Env env, DmaHeapAddon* addon, int fd)
      : Napi::AsyncWorker(env, "dma-heap:close"), deferred_(Napi::Promise::Deferred::New(env)), addon_(addon), fd_(fd) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    // Not ours any more: this env's teardown closed it first (a terminated worker).
    if (addon_->TakeOwned(fd_) && ::close(fd_) != 0) err_ = errno;
  }
  void OnOK() override {
    if (err_)
      deferred_.Reject(ErrnoError(Env(), err_, "close").Value());
    else
      deferred_.Resolve(Env().Undefined());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  DmaHeapAddon* addon_;
  int fd_;
  int err_ = 0;
};

}  // namespace

// closeMappedAsync(fd, mapping?) -> Promise<void>: the munmap now (views detach before this
// returns), the close on the libuv pool. The fd is this env's until the pool thread takes it
// (adopted ones too), so a worker torn down meanwhile still closes it, once.
Napi::Value DmaHeapAddon::CloseMappedAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  UnmapArg(info);
  Own(fd);
  auto* worker = new CloseWorker(env, this, fd);  // deletes itself when done
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value DmaHeapAddon::ReadMapped(const Napi::CallbackInfo& info) {
  CopyMapped(info, false);
  return info.Env().Undefined();
}

Napi::Value DmaHeapAddon::WriteMapped(const Napi::CallbackInfo& info) {
  CopyMapped(info, true);
  return info.Env().Undefined();
}

Napi::Value DmaHeapAddon::Lseek(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  double offset = IntegerArg(info, 1, "offset", -kMaxSafeInteger, kMaxSafeInteger);
  int whence = IntArg(info, 2, "whence");
  off_t r = ::lseek(fd, static_cast<off_t>(offset), whence);
  if (r < 0) ThrowErrno(env, errno, "lseek");
  return Napi::Number::New(env, static_cast<double>(r));
}

Napi::Value DmaHeapAddon::Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  bool cloexec = info[1].ToBoolean();
  return NewFd(env, ::fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0), "dup");
}

Napi::Value DmaHeapAddon::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0);
  Disown(fd);  // Linux frees the number even when close reports an error
  if (::close(fd) != 0) ThrowErrno(env, errno, "close");
  return env.Undefined();
}
