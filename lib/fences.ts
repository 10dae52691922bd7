/**
 * Waiting for device fences without blocking the event loop. A dma-buf fd is pollable:
 * POLLIN once no write fence is pending (safe to read), POLLOUT once no fence at all is
 * (safe to write); a sync_file fd reports POLLIN once signalled. Both kernels answer
 * pollNow (one poll that never waits) and pollWait (readiness through the event loop:
 * uv_poll on the real kernel, fence callbacks in the software framework).
 */
import { invalidArgType, outOfRange, validateAbortSignal, validateOptions } from './args';
import { DmaHeapError } from './errors';
import { POLLIN, POLLOUT } from './fence-uapi';
import type { Kernel } from './kernel';
import { longTimeout, type LongTimer } from './timer';
import type { CpuAccess } from './validate';
import { abortError } from './abort';

export interface PollHandle {
  /** stop waiting; the callback is never called afterwards; idempotent */
  stop(): void;
}

/** What waiting on fences needs from a kernel (both implement it). */
export interface FenceKernel {
  /** poll(2) once without waiting: which of `events` (POLLIN, POLLOUT) are ready now */
  pollNow(fd: number, events: number): number;
  /**
   * Call `cb` once, on a later turn of the event loop, when any of `events` is ready on fd.
   * The kernel keeps its own reference to the file meanwhile (closing fd does not end the
   * wait) and keeps the event loop alive, as pending device work should.
   */
  pollWait(fd: number, events: number, cb: (err: Error | null, revents: number) => void): PollHandle;
}

/** How long a fence wait may last: {@link DmaBuf.idle}, {@link DmaBuf.cpuAccessAsync}, {@link SyncFile.wait}. */
export interface WaitOptions {
  /** abort the wait: the promise rejects with an AbortError (code 'ABORT_ERR', the signal's reason as `cause`) */
  signal?: AbortSignal;
  /**
   * give up after this many ms: rejects with a DmaHeapError code ETIMEDOUT. Any finite
   * number >= 0 is honoured in full (beyond setTimeout's 2^31-1 ms too); `Infinity` means
   * no timeout, as leaving it out does.
   */
  timeout?: number;
}

/** The poll bits an access waits for: a reader waits for writers (POLLIN), a writer for everyone (POLLOUT). */
export function eventsFor(access: CpuAccess | 'read' | 'write'): number {
  return access === 'read' ? POLLIN : POLLOUT;
}

/**
 * The options of a wait, read once (a getter runs once; what waitReady uses is what was
 * checked): a plain object or undefined, no keys but these (a typo such as `timout` would
 * otherwise wait forever). Throws; the promise-returning callers turn that into a rejection.
 */
export function validateWait(options: unknown): WaitOptions {
  const { signal, timeout } = validateOptions(options as WaitOptions | undefined, ['signal', 'timeout'], 'options');
  validateAbortSignal(signal, 'options.signal');
  if (timeout !== undefined && typeof timeout !== 'number') throw invalidArgType('options.timeout', 'of type number', timeout);
  if (timeout !== undefined && !(timeout >= 0)) {
    throw outOfRange('options.timeout', 'a number of ms >= 0 (Infinity: no timeout)', timeout);
  }
  return { signal, timeout };
}

/**
 * Resolve once `events` is ready on fd. Resolves without waiting (still asynchronously) when
 * it is ready now. `options` come from validateWait; `what` names the wait in errors. Every
 * failure is a rejection, never a throw.
 */
export function waitReady(kernel: Kernel, fd: number, events: number, options: WaitOptions, what: string): Promise<void> {
  const { signal, timeout } = options;
  if (signal?.aborted) return Promise.reject(abortError(signal, what));
  let ready: number;
  try {
    ready = kernel.pollNow(fd, events);
  } catch (e) {
    return Promise.reject(e);
  }
  if (ready & events) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    let timer: LongTimer | undefined;
    let handle: PollHandle | undefined;
    // failed says how it ended, not err's truthiness
    const done = (failed: boolean, err?: unknown) => {
      handle?.stop();
      timer?.clear();
      signal?.removeEventListener('abort', onAbort);
      if (failed) reject(err);
      else resolve();
    };
    const onAbort = () => done(true, abortError(signal!, what));
    try {
      handle = kernel.pollWait(fd, events, (err, revents) => {
        if (err) done(true, err);
        else if (revents & events) done(false);
        else done(true, new DmaHeapError('EIO', 'poll', { message: `${what}: poll reported 0x${revents.toString(16)}` }));
      });
    } catch (e) {
      reject(e);
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeout !== undefined && timeout !== Infinity) {
      timer = longTimeout(
        () => done(true, new DmaHeapError('ETIMEDOUT', 'poll', { message: `${what}: still pending after ${timeout} ms` })),
        timeout,
      );
    }
  });
}
