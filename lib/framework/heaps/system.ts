/**
 * The `system` heap, after drivers/dma-buf/heaps/system_heap.c: zeroed, page-granular,
 * not contiguous; exp_name is the heap's name. The kernel hands out pages until the OOM killer
 * steps in; the simulation refuses more than the machine's RAM with ENOMEM instead.
 */
import { physicalMemory } from '../../host';
import type { BackingMemory } from '../backing';
import { errno } from '../errno';
import type { KernelDmaBuf } from '../dma-buf';
import type { DmaHeap } from '../dma-heap';
import type { Framework } from '../framework';
import { moduleInit } from '../initcall';

export function addSystemHeap(fw: Framework): DmaHeap {
  return fw.addHeap({
    name: 'system',
    ops: {
      allocate(heap, len, fdFlags): KernelDmaBuf<BackingMemory> {
        if (len > physicalMemory()) throw errno('ENOMEM');
        const size = Number(len);
        const backing = fw.allocBacking(size, heap.name); // zeroed: a fresh memfd or ArrayBuffer
        return fw.exportBacking({ expName: heap.name, size, flags: fdFlags, backing, priv: backing });
      },
    },
  });
}

/** module_init(system_heap_create) */
moduleInit(addSystemHeap);
