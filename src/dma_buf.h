// Mappings handed to JS as external ArrayBuffers. A record is shared by the
// env's registry and the ArrayBuffer's finalizer, so whichever of munmap(),
// the GC finalizer or env teardown comes first unmaps, exactly once, and the
// others find nothing to do, in any order.
#ifndef DMA_HEAP_DMA_BUF_H
#define DMA_HEAP_DMA_BUF_H

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>

class MapRegistry;

struct Mapping {
  Mapping(void* a, size_t len, std::weak_ptr<MapRegistry> reg)
      : addr(a), length(len), registry(std::move(reg)) {}
  void* const addr;
  const size_t length;
  const std::weak_ptr<MapRegistry> registry;  // gone once the env is torn down
  std::atomic<bool> mapped{true};

  bool Unmap();  // true if this call did the munmap
};

class MapRegistry {
 public:
  ~MapRegistry();  // env teardown: unmap whatever is still mapped
  void Add(const std::shared_ptr<Mapping>& m);
  std::shared_ptr<Mapping> Find(void* addr);
  // forget m (not a later mapping at the same address) and unmap it;
  // returns true if this call did the munmap.
  bool Release(const std::shared_ptr<Mapping>& m);

 private:
  std::mutex mu_;  // finalizers run on the JS thread today; don't bet on it
  std::unordered_map<void*, std::shared_ptr<Mapping>> live_;
};

#endif  // DMA_HEAP_DMA_BUF_H
