/**
 * The TEE's protected heaps, after drivers/tee/tee_heap.c (6.18): OP-TEE registers
 * `protected,secure-video`, `protected,trusted-ui` and `protected,secure-video-record` when the
 * secure world offers that memory. Their buffers can be allocated, shared and attached to
 * devices, but the CPU cannot map them: tee_heap_buf_ops has no mmap (dma_buf_mmap_internal:
 * EINVAL) and no begin_cpu_access/end_cpu_access (DMA_BUF_IOCTL_SYNC does the fence wait and
 * returns 0). The exporter's name is the module's, `tee` (DEFINE_DMA_BUF_EXPORT_INFO).
 *
 * The simulation keeps the buffer's bytes in an ordinary backing: a process the fd is passed to
 * can map a memfd-backed one itself (a memfd has no exporter to refuse it). What the framework
 * models is this process's view: every mapping through the kernel is refused.
 */
import type { BackingMemory } from '../backing';
import type { DmaBufOps, KernelDmaBuf } from '../dma-buf';
import type { DmaHeap } from '../dma-heap';
import type { Framework, ProtectedHeapId } from '../framework';
import { moduleInit } from '../initcall';
import { TEE_EXP_NAME } from '../../heap-kind';


/** tee_heap_buf_ops: attach/map for devices (not modelled), release; no mmap, no CPU access ops */
const TEE_HEAP_BUF_OPS: DmaBufOps<BackingMemory> = {
  release: (dmabuf) => dmabuf.priv.free(),
};

export function addProtectedHeap(fw: Framework, id: ProtectedHeapId): DmaHeap {
  return fw.addHeap({
    name: `protected,${id}`,
    ops: {
      allocate(heap, len, fdFlags): KernelDmaBuf<BackingMemory> {
        const size = Number(len);
        const backing = fw.allocBacking(size, heap.name);
        try {
          return fw.dmaBufExport({ expName: TEE_EXP_NAME, size, flags: fdFlags, priv: backing, backing, ops: TEE_HEAP_BUF_OPS });
        } catch (e) {
          backing.free();
          throw e;
        }
      },
    },
  });
}

/** tee_device_register_dma_heap, for each heap the (simulated) secure world offers */
moduleInit((fw) => {
  for (const id of fw.protectedHeaps) addProtectedHeap(fw, id);
});
