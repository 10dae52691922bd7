export { DmaBuf, fromFd, type FromFdOptions, type Tier } from './dmabuf';
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
export { CONTIGUOUS_HEAP_NAMES } from './chooser';
export { DmaHeapError, DmaBufStateError } from './errors';
export type { DmaBufInfo } from './fdinfo';
export type { Backend, Backing, HeapEntry } from './kernel';
export type { CpuAccess } from './validate';
export { addonStatus, udmabufSizeLimit } from './native';
export { Framework, SoftwareFence, SoftwareFenceSource, type FenceSourceOptions } from './framework';
export { SyncFile, type SyncFileInfo, type SyncFileStatus } from './sync-file';
export type { WaitOptions } from './fences';
export { allocShareable, TIERS, type ShareableOptions } from './tiers';
export {
  DmaBufChannel,
  DmaBufChannelError,
  DmaBufServer,
  inheritedBuffers,
  spawnWithBuffers,
  type ChannelMessage,
  type ChannelOptions,
  type ChannelType,
} from './share';
