/** The software dma-heap framework (a simulated kernel); see framework.ts. */
export { Framework, DEFAULT_CMA_SIZE, type FrameworkOptions } from './framework';
export { DmaHeap, type DmaHeapExportInfo, type DmaHeapOps, type Profile } from './dma-heap';
export {
  DmaBuf,
  type CpuAccessState,
  type DmaBufExportInfo,
  type DmaBufOps,
  type DmaDataDirection,
} from './dma-buf';
export { type BackingMemory, type Vma } from './backing';
export { Cma } from './cma';
export { type FileOperations } from './file';
export { moduleInit, type Initcall } from './initcall';
// The built-in heaps register themselves (module_init) when loaded, in this order: system
// gets the first minor, as system_heap_create's initcall runs before the CMA heap's.
export { addSystemHeap } from './heaps/system';
export { CMA_ALIGNMENT, DEFAULT_CMA_NAME, getOrder, type CmaBuffer } from './heaps/cma';
export { Faults, type AllocationFault } from './faults';
export { type AccessContext, type AccessPolicy, type Credentials } from './policy';
export { Errno, errno } from './errno';
export { hostPageSize } from './page-size';
export { SoftwareFence, SoftwareFenceSource, type FenceSourceOptions } from './fence-source';
export { DmaFence } from './dma-fence';
export { DmaResv, type FenceUsage } from './dma-resv';
