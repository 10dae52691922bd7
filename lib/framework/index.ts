/**
 * `dma-heap/framework`: the software dma-heap framework, for a test or a heap of your own.
 * `Framework` is the configuration (heaps, access policy, faults); `framework.kernel` the
 * simulated kernel behind it. The kernel's objects are named as the kernel names them
 * (KernelDmaBuf is `struct dma_buf`), so none collides with the public DmaBuf or SyncFile.
 *
 * @module dma-heap/framework
 */
// The built-in heaps register themselves (module_init) when loaded, in this order: system
// gets the first minor, as system_heap_create's initcall runs before the CMA heap's; the TEE's
// protected heaps come last (the OP-TEE driver probes after the heap modules).
import './heaps/system';
import './heaps/cma';
import './heaps/tee';

export { Framework, DEFAULT_CMA_SIZE, type CmaRegion, type FrameworkOptions, type KernelRelease, type ProtectedHeapId } from './framework';
export type { MemfdPolicy, SimulatedKernel } from './simulated-kernel';
export type { DmaHeap, DmaHeapExportInfo, DmaHeapOps, Profile } from './dma-heap';
export type { KernelDmaBuf, CpuAccessState, DmaBufExportInfo, DmaBufOps, DmaDataDirection } from './dma-buf';
export type { BackingMemory, Vma } from './backing';
export type { CmaBuffer } from './heaps/cma';
export type { Cma } from './cma';
export type { Faults, AllocationFault } from './faults';
export type { AccessContext, AccessPolicy, Credentials } from './policy';
export { errno, Errno } from './errno';
export { SoftwareFence, SoftwareFenceSource, type FenceSourceOptions } from './fence-source';
