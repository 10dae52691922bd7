export { DmaBuf, type Tier } from './dmabuf';
export { Heap, type AllocOptions, type HeapAbi, type HeapFeatures } from './heap';
export { listHeaps, openHeap, openContiguousHeap, CONTIGUOUS_HEAP_NAMES, type ListedHeap, type OpenHeapOptions } from './select';
export { DmaHeapError, DmaBufStateError } from './errors';
export type { DmaBufInfo } from './fdinfo';
export type { Backend, Backing, HeapEntry } from './kernel';
export type { CpuAccess } from './validate';
export { addonStatus } from './native/load';
export { Framework } from './framework';
export { fromFd, type FromFdOptions } from './adopt';
export { allocShareable, TIERS, type ShareableOptions } from './tiers';
export { udmabufSizeLimit } from './native/udmabuf';
export {
  DmaBufChannel,
  DmaBufChannelError,
  DmaBufServer,
  inheritedBuffers,
  spawnWithBuffers,
  type ChannelMessage,
  type ChannelOptions,
  type ChannelType,
} from './share/channel';
