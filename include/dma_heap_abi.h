/*
 * ABI facts of the interfaces dma-heap speaks, written for this project from
 * the kernel's documented uapi (mainline Linux and the 2019 v14 dma-heap patch).
 * Not a copy of kernel headers: those may be missing or older on the build host.
 * Every struct here has the same layout on 32- and 64-bit ABIs (no padding).
 */
#ifndef DMA_HEAP_ABI_H
#define DMA_HEAP_ABI_H

#include <stdint.h>
#include <fcntl.h>
#include <linux/ioctl.h>

/* /dev/dma_heap/<name>: one ioctl in mainline (Linux 5.6+). */
struct dma_heap_abi_allocation_data {
  uint64_t len;        /* in: bytes wanted; the kernel rounds up to pages */
  uint32_t fd;         /* out: the dma-buf fd; must be 0 on input */
  uint32_t fd_flags;   /* in: O_CLOEXEC | O_ACCMODE only */
  uint64_t heap_flags; /* in: no flag is defined; must be 0 */
};

#define DMA_HEAP_ABI_MAGIC 'H'
#define DMA_HEAP_ABI_IOCTL_ALLOC \
  _IOWR(DMA_HEAP_ABI_MAGIC, 0x0, struct dma_heap_abi_allocation_data)
#define DMA_HEAP_ABI_VALID_FD_FLAGS (O_CLOEXEC | O_ACCMODE)

/* The v14 patch (2019): GET_FEATURES at nr 0, ALLOC at nr 1. Never merged;
 * a mainline kernel answers GET_FEATURES with EINVAL (it decodes as ALLOC). */
#define DMA_HEAP_ABI_V14_IOCTL_GET_FEATURES _IOR(DMA_HEAP_ABI_MAGIC, 0x0, uint64_t)
#define DMA_HEAP_ABI_V14_IOCTL_ALLOC \
  _IOWR(DMA_HEAP_ABI_MAGIC, 0x1, struct dma_heap_abi_allocation_data)

/* dma-buf fds. */
struct dma_heap_abi_buf_sync {
  uint64_t flags;
};
#define DMA_HEAP_ABI_BUF_SYNC_READ (1ULL << 0)
#define DMA_HEAP_ABI_BUF_SYNC_WRITE (2ULL << 0)
#define DMA_HEAP_ABI_BUF_SYNC_RW (DMA_HEAP_ABI_BUF_SYNC_READ | DMA_HEAP_ABI_BUF_SYNC_WRITE)
#define DMA_HEAP_ABI_BUF_SYNC_START (0ULL << 2)
#define DMA_HEAP_ABI_BUF_SYNC_END (1ULL << 2)
#define DMA_HEAP_ABI_BUF_SYNC_VALID_FLAGS_MASK \
  (DMA_HEAP_ABI_BUF_SYNC_RW | DMA_HEAP_ABI_BUF_SYNC_END)
#define DMA_HEAP_ABI_BUF_NAME_LEN 32 /* 31 characters and the NUL */

#define DMA_HEAP_ABI_BUF_BASE 'b'
#define DMA_HEAP_ABI_BUF_IOCTL_SYNC _IOW(DMA_HEAP_ABI_BUF_BASE, 0, struct dma_heap_abi_buf_sync)
/* SET_NAME's argument is a pointer to the string; the size field was
 * written as sizeof(const char *) so 32- and 64-bit kernels differ: A and B. */
#define DMA_HEAP_ABI_BUF_SET_NAME_A _IOW(DMA_HEAP_ABI_BUF_BASE, 1, uint32_t)
#define DMA_HEAP_ABI_BUF_SET_NAME_B _IOW(DMA_HEAP_ABI_BUF_BASE, 1, uint64_t)

/* Implicit fences in and out of a dma-buf as sync_file fds (Linux 6.0+; older
 * kernels answer ENOTTY). flags: DMA_HEAP_ABI_BUF_SYNC_READ and/or _WRITE.
 * EXPORT with READ hands out what a reader waits for (the writers), with WRITE
 * everything; IMPORT adds the fence as a write fence with WRITE, else a read one.
 * A bad or non-sync_file fd in IMPORT is EINVAL, not EBADF. */
struct dma_heap_abi_buf_sync_file {
  uint32_t flags;
  int32_t fd; /* EXPORT: out, a new O_CLOEXEC sync_file fd; IMPORT: in */
};
#define DMA_HEAP_ABI_BUF_IOCTL_EXPORT_SYNC_FILE \
  _IOWR(DMA_HEAP_ABI_BUF_BASE, 2, struct dma_heap_abi_buf_sync_file)
#define DMA_HEAP_ABI_BUF_IOCTL_IMPORT_SYNC_FILE \
  _IOW(DMA_HEAP_ABI_BUF_BASE, 3, struct dma_heap_abi_buf_sync_file)

/* poll(2) on a dma-buf: POLLIN when no write fence is pending (safe to read),
 * POLLOUT when no fence at all is (safe to write). A sync_file: POLLIN once signalled. */
#define DMA_HEAP_ABI_POLLIN 0x001
#define DMA_HEAP_ABI_POLLOUT 0x004

/* sync_file fds (the kernel's sync_file uapi, restated). */
#define DMA_HEAP_ABI_SYNC_NAME_LEN 32
struct dma_heap_abi_sync_fence_info {
  char obj_name[DMA_HEAP_ABI_SYNC_NAME_LEN];
  char driver_name[DMA_HEAP_ABI_SYNC_NAME_LEN];
  int32_t status; /* 1 signalled, 0 active, < 0 error */
  uint32_t flags;
  uint64_t timestamp_ns;
};
struct dma_heap_abi_sync_file_info {
  char name[DMA_HEAP_ABI_SYNC_NAME_LEN];
  int32_t status;        /* 1 signalled, 0 active, < 0 error (with num_fences 0 on input) */
  uint32_t flags;        /* must be 0, else EINVAL */
  uint32_t num_fences;   /* in: room in sync_fence_info (0: just count); out: the count */
  uint32_t pad;          /* must be 0, else EINVAL */
  uint64_t sync_fence_info; /* user pointer to num_fences dma_heap_abi_sync_fence_info */
};
struct dma_heap_abi_sync_merge_data {
  char name[DMA_HEAP_ABI_SYNC_NAME_LEN];
  int32_t fd2;
  int32_t fence; /* out: the merged sync_file's fd */
  uint32_t flags;
  uint32_t pad;
};
#define DMA_HEAP_ABI_SYNC_IOC_MAGIC '>'
#define DMA_HEAP_ABI_SYNC_IOC_MERGE \
  _IOWR(DMA_HEAP_ABI_SYNC_IOC_MAGIC, 3, struct dma_heap_abi_sync_merge_data)
#define DMA_HEAP_ABI_SYNC_IOC_FILE_INFO \
  _IOWR(DMA_HEAP_ABI_SYNC_IOC_MAGIC, 4, struct dma_heap_abi_sync_file_info)

/* /dev/udmabuf: turns a sealed memfd into a dma-buf. */
struct dma_heap_abi_udmabuf_create {
  uint32_t memfd;
  uint32_t flags;
  uint64_t offset;
  uint64_t size;
};
#define DMA_HEAP_ABI_UDMABUF_FLAGS_CLOEXEC 0x01
#define DMA_HEAP_ABI_UDMABUF_CREATE _IOW('u', 0x42, struct dma_heap_abi_udmabuf_create)
#define DMA_HEAP_ABI_UDMABUF_SIZE_LIMIT_MB_DEFAULT 64

#define DMA_HEAP_ABI_NUM_HEAP_MINORS 128

#endif /* DMA_HEAP_ABI_H */
