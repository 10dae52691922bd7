// The `abi` object: numbers as the C compiler computes them from
// include/dma_heap_abi.h, so TS (lib/uapi.ts) can be checked against C.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "addon.h"
#include "dma_heap_abi.h"

// The header is ours, not the kernel's: pin it to the kernel's uapi values.
static_assert(sizeof(struct dma_heap_abi_allocation_data) == 24, "allocation_data layout");
static_assert(sizeof(struct dma_heap_abi_udmabuf_create) == 24, "udmabuf_create layout");
static_assert(DMA_HEAP_ABI_IOCTL_ALLOC == 0xC0184800u, "ALLOC");
static_assert(DMA_HEAP_ABI_V14_IOCTL_GET_FEATURES == 0x80084800u, "v14 GET_FEATURES");
static_assert(DMA_HEAP_ABI_V14_IOCTL_ALLOC == 0xC0184801u, "v14 ALLOC");
static_assert(DMA_HEAP_ABI_BUF_IOCTL_SYNC == 0x40086200u, "SYNC");
static_assert(DMA_HEAP_ABI_BUF_SET_NAME_A == 0x40046201u, "SET_NAME_A");
static_assert(DMA_HEAP_ABI_BUF_SET_NAME_B == 0x40086201u, "SET_NAME_B");
static_assert(DMA_HEAP_ABI_UDMABUF_CREATE == 0x40187542u, "UDMABUF_CREATE");
static_assert(sizeof(struct dma_heap_abi_buf_sync_file) == 8, "dma_buf_export_sync_file layout");
static_assert(sizeof(struct dma_heap_abi_sync_file_info) == 56, "sync_file_info layout");
static_assert(sizeof(struct dma_heap_abi_sync_fence_info) == 80, "sync_fence_info layout");
static_assert(sizeof(struct dma_heap_abi_sync_merge_data) == 48, "sync_merge_data layout");
static_assert(DMA_HEAP_ABI_BUF_IOCTL_EXPORT_SYNC_FILE == 0xC0086202u, "EXPORT_SYNC_FILE");
static_assert(DMA_HEAP_ABI_BUF_IOCTL_IMPORT_SYNC_FILE == 0x40086203u, "IMPORT_SYNC_FILE");
static_assert(DMA_HEAP_ABI_SYNC_IOC_FILE_INFO == 0xC0383E04u, "SYNC_IOC_FILE_INFO");
static_assert(DMA_HEAP_ABI_SYNC_IOC_MERGE == 0xC0303E03u, "SYNC_IOC_MERGE");
static_assert(DMA_HEAP_ABI_POLLIN == POLLIN && DMA_HEAP_ABI_POLLOUT == POLLOUT, "poll bits");

Napi::Object AbiFacts(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* key, double value) { o.Set(key, Napi::Number::New(env, value)); };
  set("DMA_HEAP_IOCTL_ALLOC", static_cast<uint32_t>(DMA_HEAP_ABI_IOCTL_ALLOC));
  set("DMA_HEAP_V14_IOCTL_GET_FEATURES", static_cast<uint32_t>(DMA_HEAP_ABI_V14_IOCTL_GET_FEATURES));
  set("DMA_HEAP_V14_IOCTL_ALLOC", static_cast<uint32_t>(DMA_HEAP_ABI_V14_IOCTL_ALLOC));
  set("DMA_BUF_IOCTL_SYNC", static_cast<uint32_t>(DMA_HEAP_ABI_BUF_IOCTL_SYNC));
  set("DMA_BUF_SET_NAME_A", static_cast<uint32_t>(DMA_HEAP_ABI_BUF_SET_NAME_A));
  set("DMA_BUF_SET_NAME_B", static_cast<uint32_t>(DMA_HEAP_ABI_BUF_SET_NAME_B));
  set("UDMABUF_CREATE", static_cast<uint32_t>(DMA_HEAP_ABI_UDMABUF_CREATE));
  set("DMA_BUF_IOCTL_EXPORT_SYNC_FILE", static_cast<uint32_t>(DMA_HEAP_ABI_BUF_IOCTL_EXPORT_SYNC_FILE));
  set("DMA_BUF_IOCTL_IMPORT_SYNC_FILE", static_cast<uint32_t>(DMA_HEAP_ABI_BUF_IOCTL_IMPORT_SYNC_FILE));
  set("SYNC_IOC_FILE_INFO", static_cast<uint32_t>(DMA_HEAP_ABI_SYNC_IOC_FILE_INFO));
  set("SYNC_IOC_MERGE", static_cast<uint32_t>(DMA_HEAP_ABI_SYNC_IOC_MERGE));
  set("SYNC_FILE_INFO_SIZE", sizeof(struct dma_heap_abi_sync_file_info));
  set("SYNC_FENCE_INFO_SIZE", sizeof(struct dma_heap_abi_sync_fence_info));
  set("BUF_SYNC_FILE_SIZE", sizeof(struct dma_heap_abi_buf_sync_file));
  set("POLLIN", POLLIN);
  set("POLLOUT", POLLOUT);
  set("POLLERR", POLLERR);
  set("POLLHUP", POLLHUP);
  set("POLLNVAL", POLLNVAL);
  set("UV_READABLE", UV_READABLE);
  set("UV_WRITABLE", UV_WRITABLE);
  set("ALLOCATION_DATA_SIZE", sizeof(struct dma_heap_abi_allocation_data));
  set("UDMABUF_CREATE_SIZE", sizeof(struct dma_heap_abi_udmabuf_create));
  set("DMA_HEAP_VALID_FD_FLAGS", DMA_HEAP_ABI_VALID_FD_FLAGS);
  set("O_CLOEXEC", O_CLOEXEC);
  set("O_RDONLY", O_RDONLY);
  set("O_RDWR", O_RDWR);
  set("O_NOFOLLOW", O_NOFOLLOW);
  set("SOCK_STREAM", SOCK_STREAM);
  set("SOCK_SEQPACKET", SOCK_SEQPACKET);
  o.Freeze();
  return o;
}

Napi::Value DmaHeapAddon::PageSize(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(sysconf(_SC_PAGESIZE)));
}
