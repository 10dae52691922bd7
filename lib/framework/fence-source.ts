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

/** Options of {@link SoftwareFenceSource}. */
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

/** One fence a SoftwareFenceSource attached to a buffer: pending until signal(), signalAfter() or its timeout. */
export class SoftwareFence {
  #timer?: LongTimer;
  #expiry?: LongTimer;

  /** @internal */
  constructor(
    /** the kernel's fence object */
    readonly fence: DmaFence,
    /** 'read' or 'write': which waiters it holds up */
    readonly access: FenceUsage,
    timeout: number,
  ) {
    if (timeout > 0) this.#expiry = longTimeout(() => this.signal(), timeout, { unref: true });
  }

  /** whether it signalled (with or without an error) */
  get signaled(): boolean {
    return this.fence.signaled;
  }

  /** 0 pending, 1 signalled, < 0 signalled with that error (-errno) */
  get status(): number {
    return this.fence.status;
  }

  /**
   * Complete the work: waiters wake; `error` (a negative errno) marks it failed. Idempotent.
   *
   * @param error a negative errno (>= -4095) to signal failure with, or undefined for success
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE` for an error that is no negative errno.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * import { Framework, SoftwareFenceSource } from 'dma-heap/framework';
   * const framework = new Framework();
   * const source = new SoftwareFenceSource(framework);
   * using buf = openHeap('system', { framework }).alloc(4096);
   * const fence = source.attach(buf, 'write');
   * fence.signal(); // buf.idle() resolves
   * ```
   */
  signal(error?: number): void {
    error = validateFenceError(error);
    this.#timer?.clear();
    this.#expiry?.clear();
    this.fence.signal(error);
  }

  /**
   * signal after `ms` (any finite number >= 0) on this event loop (a timer that keeps the
   * loop alive, as pending device work); a second call replaces the first.
   *
   * @param ms the delay in ms
   * @param error a negative errno to signal failure with, or undefined for success
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE` for a delay that is no
   * finite number >= 0, or an error that is no negative errno (checked now, never in the timer).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * import { Framework, SoftwareFenceSource } from 'dma-heap/framework';
   * const framework = new Framework();
   * const source = new SoftwareFenceSource(framework);
   * using buf = openHeap('system', { framework }).alloc(4096);
   * source.attach(buf, 'write').signalAfter(5); // a device that takes 5 ms
   * await buf.cpuAccessAsync('read', (bytes) => bytes[0]);
   * ```
   */
  signalAfter(ms: number, error?: number): void {
    validateMs(ms, 'ms');
    error = validateFenceError(error);
    this.#timer?.clear();
    this.#timer = longTimeout(() => this.signal(error), ms);
  }
}

/**
 * Plays the device that fences a framework's buffers (as vgem's fence ioctls do): attach() a
 * pending fence, signal() it when the simulated work is done.
 */
export class SoftwareFenceSource {
  /** the driver name its sync_files show */
  readonly name: string;
  /** ms after which an unsignalled fence signals by itself; 0: never */
  readonly timeout: number;

  /**
   * A fence source for one framework's buffers.
   *
   * @param framework the framework whose buffers it fences
   * @param options the driver `name` (default 'swfence') and `timeout` (default 10000 ms, as vgem)
   * @throws TypeError `ERR_INVALID_ARG_TYPE` when `framework` is no Framework, for a non-string
   * name or bad options; RangeError `ERR_OUT_OF_RANGE` for a timeout that is no finite number >= 0.
   * @example
   * ```ts
   * import { Framework, SoftwareFenceSource } from 'dma-heap/framework';
   * const source = new SoftwareFenceSource(new Framework(), { name: 'camera', timeout: 0 });
   * ```
   */
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
   *
   * @param buf a DmaBuf of this source's framework, or its fd
   * @param access 'write' (readers and writers wait) or 'read' (writers wait)
   * @returns the pending fence
   * @throws TypeError `ERR_INVALID_ARG_TYPE` when `buf` is neither a DmaBuf nor a number;
   * `ERR_INVALID_ARG_VALUE` for another framework's buffer or another access; RangeError
   * `ERR_OUT_OF_RANGE` for a bad fd number.
   * @throws DmaHeapError (syscall 'ioctl') `EBADF` for a closed buffer or an fd that is no
   * dma-buf of this framework; `EBUSY` when a conflicting fence is pending (as vgem refuses it).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * import { Framework, SoftwareFenceSource } from 'dma-heap/framework';
   * const framework = new Framework();
   * const source = new SoftwareFenceSource(framework);
   * using buf = openHeap('system', { framework }).alloc(4096);
   * const fence = source.attach(buf, 'write');
   * setTimeout(() => fence.signal(), 10);
   * await buf.idle('read'); // resolves once signalled
   * ```
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
