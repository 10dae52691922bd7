// Registration and the per-environment instance (see addon.h).
#include "addon.h"

#include <unistd.h>

#include <mutex>
#include <unordered_map>

#include "args.h"
#include "dma_buf.h"

namespace {

// Which env owns each fd number. Process-wide on purpose: the numbers are.
struct FdOwners {
  std::mutex mu;
  std::unordered_map<int, const DmaHeapAddon*> owner;
};

FdOwners& Owners() {
  static FdOwners* owners = new FdOwners();  // never destroyed: envs tear down during exit
  return *owners;
}

}  // namespace

void DmaHeapAddon::Own(int fd) {
  FdOwners& t = Owners();
  std::lock_guard<std::mutex> lock(t.mu);
  t.owner[fd] = this;
}

void DmaHeapAddon::Disown(int fd) {
  FdOwners& t = Owners();
  std::lock_guard<std::mutex> lock(t.mu);
  t.owner.erase(fd);
}

bool DmaHeapAddon::TakeOwned(int fd) {
  FdOwners& t = Owners();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.owner.find(fd);
  if (it == t.owner.end() || it->second != this) return false;
  t.owner.erase(it);
  return true;
}

Napi::Value DmaHeapAddon::NewFd(Napi::Env env, int fd, const char* syscall, const char* path) {
  if (fd < 0) ThrowErrno(env, errno, syscall, path);
  Own(fd);
  return Napi::Number::New(env, fd);
}

Napi::Value DmaHeapAddon::SetErrors(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) ThrowArg(info.Env(), "type", "factory", "of type function", info[0]);
  errorFactory = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

DmaHeapAddon::DmaHeapAddon(Napi::Env env, Napi::Object exports)
    : maps_(std::make_shared<MapRegistry>()) {
  DefineAddon(exports, {
      InstanceValue("abi", AbiFacts(env), napi_enumerable),
      InstanceMethod("pageSize", &DmaHeapAddon::PageSize, napi_enumerable),
      InstanceMethod("open", &DmaHeapAddon::Open, napi_enumerable),
      InstanceMethod("close", &DmaHeapAddon::Close, napi_enumerable),
      InstanceMethod("dup", &DmaHeapAddon::Dup, napi_enumerable),
      InstanceMethod("lseek", &DmaHeapAddon::Lseek, napi_enumerable),
      InstanceMethod("own", &DmaHeapAddon::JsOwn, napi_enumerable),
      InstanceMethod("setErrors", &DmaHeapAddon::SetErrors, napi_enumerable),
      InstanceMethod("disown", &DmaHeapAddon::JsDisown, napi_enumerable),
      InstanceMethod("ioctl", &DmaHeapAddon::Ioctl, napi_enumerable),
      InstanceMethod("ioctlAsync", &DmaHeapAddon::IoctlAsync, napi_enumerable),
      InstanceMethod("heapAlloc", &DmaHeapAddon::HeapAlloc, napi_enumerable),
      InstanceMethod("mmap", &DmaHeapAddon::Mmap, napi_enumerable),
      InstanceMethod("munmap", &DmaHeapAddon::Munmap, napi_enumerable),
      InstanceMethod("closeMapped", &DmaHeapAddon::CloseMapped, napi_enumerable),
      InstanceMethod("closeMappedAsync", &DmaHeapAddon::CloseMappedAsync, napi_enumerable),
      InstanceMethod("readMapped", &DmaHeapAddon::ReadMapped, napi_enumerable),
      InstanceMethod("writeMapped", &DmaHeapAddon::WriteMapped, napi_enumerable),
      InstanceMethod("memfdCreate", &DmaHeapAddon::MemfdCreate, napi_enumerable),
      InstanceMethod("memfdBuffer", &DmaHeapAddon::MemfdBuffer, napi_enumerable),
      InstanceMethod("udmabufBuffer", &DmaHeapAddon::UdmabufBuffer, napi_enumerable),
      InstanceMethod("ftruncate", &DmaHeapAddon::Ftruncate, napi_enumerable),
      InstanceMethod("addSeals", &DmaHeapAddon::AddSeals, napi_enumerable),
      InstanceMethod("getSeals", &DmaHeapAddon::GetSeals, napi_enumerable),
      InstanceMethod("socket", &DmaHeapAddon::Socket, napi_enumerable),
      InstanceMethod("socketpair", &DmaHeapAddon::Socketpair, napi_enumerable),
      InstanceMethod("bind", &DmaHeapAddon::Bind, napi_enumerable),
      InstanceMethod("listen", &DmaHeapAddon::Listen, napi_enumerable),
      InstanceMethod("accept", &DmaHeapAddon::Accept, napi_enumerable),
      InstanceMethod("connect", &DmaHeapAddon::Connect, napi_enumerable),
      InstanceMethod("peerCredentials", &DmaHeapAddon::PeerCredentials, napi_enumerable),
      InstanceMethod("sendFds", &DmaHeapAddon::SendFds, napi_enumerable),
      InstanceMethod("recvFds", &DmaHeapAddon::RecvFds, napi_enumerable),
      InstanceMethod("poll", &DmaHeapAddon::Poll, napi_enumerable),
      InstanceMethod("pollNow", &DmaHeapAddon::PollNow, napi_enumerable),
  });
}

// Runs when the env (main thread or worker) is torn down: no JS runs any more.
// Mappings are unmapped by ~MapRegistry unless a finalizer already did; pollers
// close themselves through their own async cleanup hooks (poll.cc).
DmaHeapAddon::~DmaHeapAddon() {
  FdOwners& t = Owners();
  std::lock_guard<std::mutex> lock(t.mu);
  for (auto it = t.owner.begin(); it != t.owner.end();) {
    if (it->second == this) {
      ::close(it->first);
      it = t.owner.erase(it);
    } else {
      ++it;
    }
  }
}

Napi::Value DmaHeapAddon::JsOwn(const Napi::CallbackInfo& info) {
  Own(FdArg(info, 0));
  return info.Env().Undefined();
}

Napi::Value DmaHeapAddon::JsDisown(const Napi::CallbackInfo& info) {
  Disown(FdArg(info, 0));
  return info.Env().Undefined();
}

NODE_API_ADDON(DmaHeapAddon)
