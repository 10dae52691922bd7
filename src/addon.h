// The addon's per-environment instance: every piece of state lives here (no
// mutable statics), so each worker_thread gets its own fds and mappings, and
// its teardown releases exactly what it created.
#ifndef DMA_HEAP_ADDON_H
#define DMA_HEAP_ADDON_H

#include <napi.h>

#include <memory>
#include <unordered_set>

class MapRegistry;  // dma_buf.h

class DmaHeapAddon : public Napi::Addon<DmaHeapAddon> {
 public:
  DmaHeapAddon(Napi::Env env, Napi::Object exports);
  ~DmaHeapAddon();

  // fds this env closes at teardown: those it created, plus those told own().
  void Own(int fd) { owned_.insert(fd); }
  void Disown(int fd) { owned_.erase(fd); }

 private:
  std::unordered_set<int> owned_;
  std::shared_ptr<MapRegistry> maps_;  // shared with mapping finalizers

  // addon.cc
  Napi::Value JsOwn(const Napi::CallbackInfo& info);
  Napi::Value JsDisown(const Napi::CallbackInfo& info);
  // abi.cc
  Napi::Value PageSize(const Napi::CallbackInfo& info);
  // heap_device.cc
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Ioctl(const Napi::CallbackInfo& info);
  Napi::Value IoctlAsync(const Napi::CallbackInfo& info);
  // dma_buf.cc
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Dup(const Napi::CallbackInfo& info);
  Napi::Value Lseek(const Napi::CallbackInfo& info);
  Napi::Value Mmap(const Napi::CallbackInfo& info);
  Napi::Value Munmap(const Napi::CallbackInfo& info);
  Napi::Value ReadMapped(const Napi::CallbackInfo& info);
  Napi::Value WriteMapped(const Napi::CallbackInfo& info);
  // memfd.cc
  Napi::Value MemfdCreate(const Napi::CallbackInfo& info);
  Napi::Value Ftruncate(const Napi::CallbackInfo& info);
  Napi::Value AddSeals(const Napi::CallbackInfo& info);
  // fd_passing.cc
  Napi::Value Socket(const Napi::CallbackInfo& info);
  Napi::Value Socketpair(const Napi::CallbackInfo& info);
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value SendFds(const Napi::CallbackInfo& info);
  Napi::Value RecvFds(const Napi::CallbackInfo& info);
  // poll.cc
  Napi::Value Poll(const Napi::CallbackInfo& info);
};

// abi.cc
Napi::Object AbiFacts(Napi::Env env);

#endif  // DMA_HEAP_ADDON_H
