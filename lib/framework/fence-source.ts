/**
 * A software fence source: the framework's counterpart of vgem's fence ioctls, so tests and
 * applications can play the device that uses a software buffer. attach() puts a pending
 * read or write fence on the buffer; signal() (or signalAfter) completes it. Like vgem, a
 * conflicting fence (any pending fence for a write, a pending write for a read) is EBUSY,
 * and every fence signals by itself after `timeout` ms (vgem: 10 s) so nothing hangs forever.
 * Each fence has a context of its own, as vgem's do (two read fences export as an array).
 */
import { types } from 'node:util';
import { invalidArgType, invalidArgValue, outOfRange, validateInteger, validateOptions } from '../args';
import type { DmaBuf as PublicDmaBuf } from '../dmabuf';
import { handleState } from '../kernel';
import { longTimeout, type LongTimer } from '../timer';
import { DmaFence, fenceContextAlloc } from './dma-fence';
import { resvOf } from './dma-buf-fences';
import { errno, syscall } from './errno';
import { Framework } from './framework';
import { type FenceUsage } from './dma-resv';

export interface FenceSourceOptions {
  /** the driver name sync_files show ("<driver>-<timeline><context>-<seqno>"); default 'swfence' */
  name?: string;
  /** ms after which an unsignalled fence signals by itself; 0: never. Default 10000, as vgem */
  timeout?: number;
}

/** A delay in ms: any finite number >= 0 (longer than setTimeout's limit too) */
function validateMs(value: unknown, what: string): number {
  if (typeof value !== 'number') throw invalidArgType(what, 'of type number', value);
  if (!(value >= 0 && Number.isFinite(value))) throw outOfRange(what, 'a finite number of ms >= 0', value);
  return value;
}

/** A fence's error: a negative errno, or undefined for success. Checked before any timer is
 *  armed, so a bad one never throws later inside a timer callback (an uncaught exception). */
function validateFenceError(error: unknown): number | undefined {
  if (error === undefined) return undefined;
  if (typeof error !== 'number') throw invalidArgType('error', 'of type number', error);
  if (!(Number.isInteger(error) && error < 0 && error >= -4095)) throw outOfRange('error', 'a negative errno (>= -4095)', error);
  return error;
}

export class SoftwareFence {
  #timer?: LongTimer;
  #expiry?: LongTimer;

  /** @internal */
  constructor(
    readonly fence: DmaFence,
    readonly access: FenceUsage,
    timeout: number,
  ) {
    if (timeout > 0) this.#expiry = longTimeout(() => this.signal(), timeout, { unref: true });
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
    error = validateFenceError(error);
    this.#timer?.clear();
    this.#expiry?.clear();
    this.fence.signal(error);
  }

  /**
   * signal after `ms` (any finite number >= 0) on this event loop (a timer that keeps the
   * loop alive, as pending device work); a second call replaces the first
   */
  signalAfter(ms: number, error?: number): void {
    validateMs(ms, 'ms');
    error = validateFenceError(error);
    this.#timer?.clear();
    this.#timer = longTimeout(() => this.signal(error), ms);
  }
}

export class SoftwareFenceSource {
  readonly name: string;
  readonly timeout: number;

  constructor(
    private readonly framework: Framework,
    options: FenceSourceOptions = {},
  ) {
    // attach() would otherwise fail later, far from the mistake, with a bare TypeError
    if (types.isProxy(framework) || !(framework instanceof Framework)) {
      throw invalidArgType('framework', 'an instance of Framework', framework);
    }
    options = validateOptions(options, ['name', 'timeout']);
    // null is no default: only a missing option is
    this.name = options.name === undefined ? 'swfence' : options.name;
    if (typeof this.name !== 'string') throw invalidArgType('options.name', 'of type string', this.name);
    this.timeout = options.timeout === undefined ? 10_000 : validateMs(options.timeout, 'options.timeout');
  }

  /**
   * a pending fence on the buffer: a DmaBuf of this framework, or its fd. A DmaBuf of another
   * kernel is ERR_INVALID_ARG_VALUE; a closed one, or an fd that is no dma-buf of this
   * framework, EBADF (what the ioctl on a foreign fd says).
   */
  attach(buf: PublicDmaBuf | number, access: 'read' | 'write'): SoftwareFence {
    let fd: number;
    if (typeof buf === 'number') {
      fd = validateInteger(buf, 'buf', 0, 0x7fffffff);
    } else {
      const state = handleState(buf);
      if (state?.kind !== 'dma-buf') throw invalidArgType('buf', 'an instance of DmaBuf or an fd number', buf);
      if (state.kernel !== this.framework.kernel) throw invalidArgValue('buf', buf, "is not a buffer of this source's framework");
      fd = state.fd;
    }
    if (access !== 'read' && access !== 'write') throw invalidArgValue('access', access, "must be 'read' or 'write'");
    return syscall('ioctl', () => {
      const dmabuf = this.framework.kernel.dmaBuf(fd);
      if (!dmabuf) throw errno('EBADF', 'not a dma-buf of this software framework');
      const resv = resvOf(dmabuf);
      if (!resv.testSignaled(access === 'write')) throw errno('EBUSY', 'a conflicting fence is pending (as vgem refuses it)');
      const fence = new SoftwareFence(new DmaFence(this.name, 'software', fenceContextAlloc(), 1), access, this.timeout);
      resv.add(fence.fence, access);
      return fence;
    });
  }
}
