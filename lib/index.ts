/**
 * `dma-heap`: Linux dma-buf heaps for Node.js. Open a heap ({@link openHeap}), allocate, map
 * and sync buffers ({@link DmaBuf}), share them with other processes ({@link DmaBufChannel},
 * {@link spawnWithBuffers}) and devices (fences: {@link SyncFile}); where the kernel has no heap,
 * the software framework serves (`dma-heap/framework`).
 *
 * @module dma-heap
 */
export { DmaBuf, fromFd, type FromFdOptions, type ShareableTier, type Tier } from './dmabuf';
export {
  Heap,
  listHeaps,
  openHeap,
  openContiguousHeap,
  type AllocOptions,
  type HeapAbi,
  type HeapFeatures,
  type ListedHeap,
  type OpenHeapOptions,
} from './heap';
export { CONTIGUOUS_HEAP_NAMES, type HeapKind } from './heap-kind';
export { HeapWatcher, watchHeaps, type HeapWatcherEvents } from './watch';
export {
  DmaHeapError,
  DmaBufStateError,
  isDmaHeapError,
  type AddonMissingError,
  type DmaBufStateErrorCode,
  type DmaHeapErrorCode,
  type DmaHeapErrorDetail,
  type DmaHeapErrorOf,
  type ErrnoCode,
} from './errors';
export type { DmaBufInfo } from './fdinfo';
export type { Backend, Backing, HeapEntry } from './kernel';
export type { CpuAccess } from './validate';
export { addonStatus, udmabufSizeLimit } from './native';
// The software framework (its configuration, simulated kernel, heaps of your own, fence
// sources for tests) is its own entry point: `dma-heap/framework` (lib/framework/index.ts).
export { SyncFile, type SyncFileInfo, type SyncFileStatus } from './sync-file';
export type { WaitOptions } from './fences';
export { allocShareable, createShareablePool, TIERS, type ShareableOptions } from './tiers';
export {
  BufferPool,
  PooledBuffer,
  type AcquireOptions,
  type BufferPoolOptions,
  type BufferPoolStats,
  type BufferSource,
} from './pool';
export {
  DmaBufChannel,
  DmaBufChannelError,
  DmaBufServer,
  type DmaBufChannelErrorCode,
  inheritedBuffers,
  inheritedItems,
  spawnWithBuffers,
  type ShareItem,
  type ChannelMessage,
  type LendItem,
  type LendResult,
  type ChannelOptions,
  type ChannelType,
  type DmaBufServerEvents,
  type DmaBufChannelEvents,
  UnixFdFrame,
  UnixFdSink,
  UnixFdSource,
  type GstCaps,
  type GstCapsValue,
  type GstFraction,
  type UnixFdMemoryType,
  type GstVideoMeta,
  type UnixFdBufferInit,
  type UnixFdMemory,
  type UnixFdMemoryInit,
  type UnixFdSinkEvents,
  type UnixFdSinkOptions,
  type UnixFdSourceEvents,
  type UnixFdSourceOptions,
  type ListenOptions,
  type PeerCredentials,
  type RefusedConnectionReason,
} from './share';
