/**
 * struct dma_fence, after drivers/dma-buf/dma-fence.c and dma-fence-array.c: a one-shot
 * completion a device signals (optionally with an error), with callbacks. What a
 * sync_file's name shows is "<driver>-<timeline><context>-<seqno>", as sync_file_get_name
 * prints it; measured on 6.12: the stub is "stub-stub0-0", a vgem fence "vgem-unbound1-1",
 * a merge of two "dma_fence_array-unbound6-1".
 */

let contexts = 0;
/** dma_fence_context_alloc(1): process-wide here, system-wide in the kernel */
export function fenceContextAlloc(): number {
  return ++contexts;
}

export type FenceCallback = (fence: DmaFence) => void;

export class DmaFence {
  /** set once signalled: 1, or the negative errno it was signalled with */
  private state: 0 | 1 | number = 0;
  private callbacks: FenceCallback[] = [];
  /** when it was signalled (performance.now() ms) */
  timestamp?: number;

  constructor(
    readonly driverName: string,
    readonly timelineName: string,
    readonly context: number,
    readonly seqno: number,
  ) {}

  get signaled(): boolean {
    return this.state !== 0;
  }

  /** dma_fence_get_status: 0 pending, 1 signalled, < 0 signalled with that error */
  get status(): number {
    return this.state;
  }

  /** the fences inside (a fence array unwraps to its members), as dma_fence_unwrap does */
  unwrap(): DmaFence[] {
    return [this];
  }

  /** dma_fence_set_error + dma_fence_signal; a second signal does nothing (returns false) */
  signal(error?: number): boolean {
    if (this.state !== 0) return false;
    this.state = error !== undefined && error < 0 ? error : 1;
    this.timestamp = performance.now();
    const cbs = this.callbacks;
    this.callbacks = [];
    for (const cb of cbs) cb(this);
    return true;
  }

  /** dma_fence_add_callback: false (and no call) when already signalled */
  addCallback(cb: FenceCallback): boolean {
    if (this.state !== 0) return false;
    this.callbacks.push(cb);
    return true;
  }

  removeCallback(cb: FenceCallback): void {
    const i = this.callbacks.indexOf(cb);
    if (i >= 0) this.callbacks.splice(i, 1);
  }
}

/** dma_fence_get_stub: the always-signalled fence EXPORT_SYNC_FILE hands out when nothing is pending */
export const stubFence = new DmaFence('stub', 'stub', 0, 0);
stubFence.signal();

/** dma_fence_array: signalled when all members are (its status: the first member error) */
export class DmaFenceArray extends DmaFence {
  constructor(readonly fences: DmaFence[]) {
    super('dma_fence_array', 'unbound', fenceContextAlloc(), 1);
    let pending = fences.filter((f) => !f.signaled).length;
    const done = () => {
      if (--pending === 0) this.signal(fences.find((f) => f.status < 0)?.status);
    };
    if (pending === 0) this.signal(fences.find((f) => f.status < 0)?.status);
    else for (const f of fences) f.addCallback(done);
  }

  override unwrap(): DmaFence[] {
    return this.fences.flatMap((f) => f.unwrap());
  }
}

/** one fence for many: none → null, one → itself, more → an array (dma_resv_get_singleton, sync_file merge) */
export function singleton(fences: DmaFence[]): DmaFence | null {
  if (fences.length === 0) return null;
  if (fences.length === 1) return fences[0];
  return new DmaFenceArray(fences);
}

/** sync_file_get_name without a user name */
export function fenceName(f: DmaFence): string {
  return `${f.driverName}-${f.timelineName}${f.context}-${f.seqno}`;
}
