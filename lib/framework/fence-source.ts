/**
 * A software fence source: the framework's counterpart of vgem's fence ioctls, so tests and
 * applications can play the device that uses a software buffer. attach() puts a pending
 * read or write fence on the buffer; signal() (or signalAfter) completes it. Like vgem, a
 * conflicting fence (any pending fence for a write, a pending write for a read) is EBUSY,
 * and every fence signals by itself after `timeout` ms (vgem: 10 s) so nothing hangs forever.
 * Each fence has a context of its own, as vgem's do (two read fences export as an array).
 */
import { invalidArgType, invalidArgValue, outOfRange, validateOptions } from '../args';
import type { DmaBuf as PublicDmaBuf } from '../dmabuf';
import { DmaFence, fenceContextAlloc } from './dma-fence';
import { resvOf } from './dma-buf-fences';
import { errno, syscall } from './errno';
import type { Framework } from './framework';
import { type FenceUsage } from './dma-resv';

export interface FenceSourceOptions {
  /** the driver name sync_files show ("<driver>-<timeline><context>-<seqno>"); default 'swfence' */
  name?: string;
  /** ms after which an unsignalled fence signals by itself; 0: never. Default 10000, as vgem */
  timeout?: number;
}

export class SoftwareFence {
  #timer?: NodeJS.Timeout;
  #expiry?: NodeJS.Timeout;

  /** @internal */
  constructor(
    readonly fence: DmaFence,
    readonly access: FenceUsage,
    timeout: number,
  ) {
    if (timeout > 0) {
      this.#expiry = setTimeout(() => this.signal(), timeout);
      this.#expiry.unref();
    }
  }

  get signaled(): boolean {
    return this.fence.signaled;
  }

  /** 0 pending, 1 signalled, < 0 signalled with that error (-errno) */
  get status(): number {
    return this.fence.status;
  }

  /** complete the work: waiters wake; `error` (a negative errno) marks it failed. Idempotent. */
  signal(error?: number): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#expiry);
    if (error !== undefined && !(Number.isInteger(error) && error < 0)) throw outOfRange('error', 'a negative errno', error);
    this.fence.signal(error);
  }

  /** signal after `ms` on this event loop (a timer that keeps the loop alive, as pending device work) */
  signalAfter(ms: number, error?: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.signal(error), ms);
  }
}

export class SoftwareFenceSource {
  readonly name: string;
  readonly timeout: number;

  constructor(
    private readonly framework: Framework,
    options: FenceSourceOptions = {},
  ) {
    options = validateOptions(options, ['name', 'timeout']);
    // null is no default: only a missing option is
    this.name = options.name === undefined ? 'swfence' : options.name;
    if (typeof this.name !== 'string') throw invalidArgType('options.name', 'of type string', this.name);
    this.timeout = options.timeout === undefined ? 10_000 : options.timeout;
    if (typeof this.timeout !== 'number') throw invalidArgType('options.timeout', 'of type number', this.timeout);
    if (!Number.isFinite(this.timeout) || this.timeout < 0) throw outOfRange('options.timeout', '>= 0 (ms)', this.timeout);
  }

  /** a pending fence on the buffer (a DmaBuf of this framework, or its fd) */
  attach(buf: PublicDmaBuf | number, access: 'read' | 'write'): SoftwareFence {
    if (access !== 'read' && access !== 'write') throw invalidArgValue('access', access, "must be 'read' or 'write'");
    return syscall('ioctl', () => {
      const fd = typeof buf === 'number' ? buf : buf.fd;
      const dmabuf = this.framework.dmaBuf(fd);
      if (!dmabuf) throw errno('EBADF', 'not a dma-buf of this software framework');
      const resv = resvOf(dmabuf);
      if (!resv.testSignaled(access === 'write')) throw errno('EBUSY', 'a conflicting fence is pending (as vgem refuses it)');
      const fence = new SoftwareFence(new DmaFence(this.name, 'software', fenceContextAlloc(), 1), access, this.timeout);
      resv.add(fence.fence, access);
      return fence;
    });
  }
}
