/**
 * struct dma_resv, after drivers/dma-buf/dma-resv.c: the fences of the devices using a
 * buffer, each with a usage. Only WRITE and READ usages are modelled (KERNEL and BOOKKEEP
 * have no userspace way in). dma_resv_usage_rw(write): a writer must wait for every fence
 * (usage <= READ), a reader for the writers (usage <= WRITE). Iteration skips signalled
 * fences, as dma_resv_iter does.
 */
import { type DmaFence, singleton } from './dma-fence';

/**
 * A fence's usage: 'write' (readers and writers wait) or 'read' (writers wait).
 *
 * @inline
 */
export type FenceUsage = 'write' | 'read';

export class DmaResv {
  private entries: Array<{ fence: DmaFence; usage: FenceUsage }> = [];

  /** dma_resv_add_fence; a later fence of the same context replaces an earlier one */
  add(fence: DmaFence, usage: FenceUsage): void {
    this.prune();
    const same = this.entries.findIndex((e) => e.fence.context === fence.context && e.fence.context !== 0);
    if (same >= 0 && (usage === 'write' || this.entries[same].usage === 'read')) this.entries.splice(same, 1);
    this.entries.push({ fence, usage });
  }

  /** the unsignalled fences a CPU or device access must wait for: `write` waits for all, a read for writers */
  pending(write: boolean): DmaFence[] {
    this.prune();
    return this.entries.filter((e) => write || e.usage === 'write').map((e) => e.fence);
  }

  /** dma_resv_test_signaled(resv, dma_resv_usage_rw(write)) */
  testSignaled(write: boolean): boolean {
    return this.pending(write).length === 0;
  }

  /** dma_resv_get_singleton(resv, dma_resv_usage_rw(write)) */
  getSingleton(write: boolean): DmaFence | null {
    return singleton(this.pending(write));
  }

  private prune(): void {
    this.entries = this.entries.filter((e) => !e.fence.signaled);
  }
}
