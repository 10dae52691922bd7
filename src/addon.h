// The addon's per-environment instance: its state lives here, so each
// worker_thread gets its own mappings and its teardown releases exactly what it
// still owns. The one exception is fd ownership (addon.cc): fds are per
// process, so which env owns which number is one table for the process.
#ifndef DMA_HEAP_ADDON_H
#define DMA_HEAP_ADDON_H

#include <napi.h>

#include <memory>

class MapRegistry;  // dma_buf.h

class DmaHeapAddon : public Napi::Addon<DmaHeapAddon> {
 public:
  DmaHeapAddon(Napi::Env env, Napi::Object exports);
  ~DmaHeapAddon();

  // fds this env closes at teardown: those it created, plus those told own().
  // A number closed by any env stops being anyone's (Disown), so a worker's
  // teardown never closes a number another thread has reused since.
  // Thread-safe (one table for the process): the libuv pool may call Own.
  void Own(int fd);
  void Disown(int fd);
  // Disown `fd` if this env still owns it; true when it did (the caller then closes it).
  // closeMappedAsync's pool thread and this env's teardown race for such an fd: exactly
  // one of them takes it, so it is closed once and a reused number never.
  bool TakeOwned(int fd);
  // The end of every call that makes an fd: throw on failure, else own it and return it.
  Napi::Value NewFd(Napi::Env env, int fd, const char* syscall, const char* path = nullptr);

  // The package's error factory (lib/native/load.ts registers it with setErrors): errno
  // failures become its DmaHeapError, argument checks its Node-style argument errors, so
  // both kernels throw the same classes with the same messages. Empty: plain errors.
  Napi::FunctionReference errorFactory;

 private:
  std::shared_ptr<MapRegistry> maps_;  // shared with mapping finalizers

  // addon.cc
  Napi::Value SetErrors(const Napi::CallbackInfo& info);
  Napi::Value JsOwn(const Napi::CallbackInfo& info);
  Napi::Value JsDisown(const Napi::CallbackInfo& info);
  // abi.cc
  Napi::Value PageSize(const Napi::CallbackInfo& info);
  // heap_device.cc
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Ioctl(const Napi::CallbackInfo& info);
  Napi::Value IoctlAsync(const Napi::CallbackInfo& info);
  Napi::Value HeapAlloc(const Napi::CallbackInfo& info);
  // dma_buf.cc
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Dup(const Napi::CallbackInfo& info);
  Napi::Value Lseek(const Napi::CallbackInfo& info);
  Napi::Value Mmap(const Napi::CallbackInfo& info);
  Napi::Value Munmap(const Napi::CallbackInfo& info);
  void UnmapArg(const Napi::CallbackInfo& info);
  Napi::Value CloseMapped(const Napi::CallbackInfo& info);
  Napi::Value CloseMappedAsync(const Napi::CallbackInfo& info);
  Napi::Value ReadMapped(const Napi::CallbackInfo& info);
  Napi::Value WriteMapped(const Napi::CallbackInfo& info);
  // memfd.cc
  Napi::Value MemfdCreate(const Napi::CallbackInfo& info);
  Napi::Value MemfdBuffer(const Napi::CallbackInfo& info);
  Napi::Value UdmabufBuffer(const Napi::CallbackInfo& info);
  Napi::Value Ftruncate(const Napi::CallbackInfo& info);
  Napi::Value AddSeals(const Napi::CallbackInfo& info);
  Napi::Value GetSeals(const Napi::CallbackInfo& info);
  // fd_passing.cc
  Napi::Value Socket(const Napi::CallbackInfo& info);
  Napi::Value Socketpair(const Napi::CallbackInfo& info);
  Napi::Value Bind(const Napi::CallbackInfo& info);
  Napi::Value Listen(const Napi::CallbackInfo& info);
  Napi::Value Accept(const Napi::CallbackInfo& info);
  Napi::Value Connect(const Napi::CallbackInfo& info);
  Napi::Value PeerCredentials(const Napi::CallbackInfo& info);
  Napi::Value SendFds(const Napi::CallbackInfo& info);
  Napi::Value RecvFds(const Napi::CallbackInfo& info);
  // poll.cc
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value PollNow(const Napi::CallbackInfo& info);
};

// abi.cc
Napi::Object AbiFacts(Napi::Env env);

#endif  // DMA_HEAP_ADDON_H
