import { constants } from 'node:os';
import { types } from 'node:util';
import { invalidArgValue } from './args';
import { CHANNEL_ERROR_CODES, DmaBufChannelError, type DmaBufChannelErrorCode } from './share/errors';

/**
 * Every errno name a DmaHeapError's `code` can be: libuv's names for Linux errnos (what the addon
 * reports, through uv_err_name, and what Node's own fs calls report), Node's os.constants.errno
 * names, and 'UNKNOWN' (an errno libuv has no name for). test/conformance/error-codes.test.ts
 * holds the list to the running Node's, so a newer libuv's name cannot go missing unnoticed.
 */
export const ERRNO_CODES = [
  'E2BIG', 'EACCES', 'EADDRINUSE', 'EADDRNOTAVAIL', 'EAFNOSUPPORT', 'EAGAIN', 'EALREADY', 'EBADF',
  'EBADMSG', 'EBUSY', 'ECANCELED', 'ECHILD', 'ECONNABORTED', 'ECONNREFUSED', 'ECONNRESET',
  'EDEADLK', 'EDESTADDRREQ', 'EDOM', 'EDQUOT', 'EEXIST', 'EFAULT', 'EFBIG', 'EHOSTDOWN',
  'EHOSTUNREACH', 'EIDRM', 'EILSEQ', 'EINPROGRESS', 'EINTR', 'EINVAL', 'EIO', 'EISCONN', 'EISDIR',
  'ELOOP', 'EMFILE', 'EMLINK', 'EMSGSIZE', 'EMULTIHOP', 'ENAMETOOLONG', 'ENETDOWN', 'ENETRESET',
  'ENETUNREACH', 'ENFILE', 'ENOBUFS', 'ENODATA', 'ENODEV', 'ENOENT', 'ENOEXEC', 'ENOLCK',
  'ENOLINK', 'ENOMEM', 'ENOMSG', 'ENONET', 'ENOPROTOOPT', 'ENOSPC', 'ENOSR', 'ENOSTR', 'ENOSYS',
  'ENOTCONN', 'ENOTDIR', 'ENOTEMPTY', 'ENOTSOCK', 'ENOTSUP', 'ENOTTY', 'ENXIO', 'EOPNOTSUPP',
  'EOVERFLOW', 'EPERM', 'EPIPE', 'EPROTO', 'EPROTONOSUPPORT', 'EPROTOTYPE', 'ERANGE', 'EREMOTEIO',
  'EROFS', 'ESHUTDOWN', 'ESOCKTNOSUPPORT', 'ESPIPE', 'ESRCH', 'ESTALE', 'ETIME', 'ETIMEDOUT',
  'ETXTBSY', 'EUNATCH', 'EWOULDBLOCK', 'EXDEV', 'UNKNOWN',
] as const;

/**
 * The errno name of a failed system call: DmaHeapError's `code`.
 *
 * @useDeclaredType
 */
export type ErrnoCode = (typeof ERRNO_CODES)[number];

/** DmaBufStateError's codes: a misuse of an object's state, never a syscall's failure. */
export const DMA_BUF_STATE_ERROR_CODES = [
  'ERR_DMA_BUF_CLOSED',
  'ERR_DMA_BUF_NO_FENCES',
  'ERR_DMA_BUF_NOT_CPU_VISIBLE',
  'ERR_DMA_BUF_READ_ONLY',
  'ERR_DMA_HEAP_CLOSED',
  'ERR_DMA_HEAP_NO_DMA_BUF',
  'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS',
  'ERR_DMA_HEAP_NO_TIER',
  'ERR_DMA_HEAP_NOT_SHAREABLE',
  'ERR_DMA_HEAP_POOL_CLOSED',
  'ERR_DMA_HEAP_POOL_EXHAUSTED',
  'ERR_DMA_HEAP_POOL_FOREIGN',
  'ERR_DMA_HEAP_POOL_RELEASED',
  'ERR_DMA_HEAP_SINK_CLOSED',
  'ERR_SYNC_FILE_CLOSED',
] as const;

/**
 * DmaBufStateError's `code`: which state was misused.
 *
 * @useDeclaredType
 */
export type DmaBufStateErrorCode = (typeof DMA_BUF_STATE_ERROR_CODES)[number];

/** The error a feature that needs the native addon throws where it did not load. */
export type AddonMissingError = Error & {
  /** always 'ERR_DMA_HEAP_NO_ADDON' */
  code: 'ERR_DMA_HEAP_NO_ADDON';
};

/**
 * Every code dma-heap's own errors carry: errno names (DmaHeapError), the state codes
 * (DmaBufStateError), the channel's two (DmaBufChannelError) and ERR_DMA_HEAP_NO_ADDON. Not in it: Node's own argument codes (ERR_INVALID_ARG_TYPE,
 * ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE, ERR_ILLEGAL_CONSTRUCTOR), which mean a bug in the
 * calling code rather than a condition to handle.
 */
export type DmaHeapErrorCode = ErrnoCode | DmaBufStateErrorCode | DmaBufChannelErrorCode | AddonMissingError['code'];

/** The error that carries `C`, its `code` narrowed to `C`. */
export type DmaHeapErrorOf<C extends DmaHeapErrorCode> = C extends ErrnoCode
  ? DmaHeapError & {
      /** the code asked for */
      code: C;
    }
  : C extends DmaBufStateErrorCode
    ? DmaBufStateError & {
        /** the code asked for */
        code: C;
      }
    : C extends DmaBufChannelErrorCode
      ? DmaBufChannelError & {
          /** the code asked for */
          code: C;
        }
      : AddonMissingError & {
          /** the code asked for */
          code: C;
        };

/**
 * What a DmaHeapError says beyond its code and syscall.
 *
 * @inline
 */
export interface DmaHeapErrorDetail {
  /** the device or heap path */
  path?: string;
  /** the heap's name */
  heap?: string;
  /** said instead of the errno's description */
  message?: string;
  /** the negated errno number; default: from the code */
  errno?: number;
}

/**
 * A failed system call, shaped like Node's own (fs) errors: `code` is the errno
 * name, `errno` the negated number (as Node reports it), `syscall` what failed,
 * `path` the device or heap path when there is one.
 */
export class DmaHeapError extends Error {
  /** the errno name: 'ENOMEM', 'EACCES', 'ENOENT'... */
  code: ErrnoCode;
  /** the negated errno number (-12 for ENOMEM), as Node's own errors report it */
  errno: number;
  /** what failed: 'open', 'ioctl', 'mmap', 'poll', 'fstat'... */
  syscall: string;
  /** the device or heap path, when there is one */
  path?: string;
  /** the heap's name, when a heap was involved */
  heap?: string;

  /**
   * The package makes these; a test double or a heap of your own may too.
   *
   * @param code the errno name, e.g. 'ENOMEM'
   * @param syscall what failed, e.g. 'ioctl'
   * @param detail `path`, `heap`, a `message` to say instead of the errno's description, and
   * `errno`: the negated number when the caller has it (the addon does), else it comes from `code`
   * @throws Nothing.
   * @example
   * ```ts
   * import { DmaHeapError } from 'dma-heap';
   * const err = new DmaHeapError('ENOMEM', 'ioctl', { heap: 'system' });
   * console.log(err.message, err.errno); // 'ENOMEM: cannot allocate memory, ioctl' -12
   * ```
   */
  constructor(code: ErrnoCode, syscall: string, detail?: DmaHeapErrorDetail);
  /** @internal a name the caller got from Node, the addon or the framework (errnoOf checked), typed string */
  constructor(code: string, syscall: string, detail?: DmaHeapErrorDetail);
  constructor(code: string, syscall: string, detail?: DmaHeapErrorDetail) {
    const path = detail?.path;
    super(`${code}: ${detail?.message ?? describe(code)}, ${syscall}${path ? ` '${path}'` : ''}`);
    this.name = 'DmaHeapError';
    this.code = code as ErrnoCode;
    this.errno = detail?.errno ?? -(errnoOf(code) ?? 0);
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
    if (detail?.heap !== undefined) this.heap = detail.heap;
  }
}

const errnoTable = constants.errno as Record<string, number>;

/** UV_UNKNOWN: what Node reports as the errno of 'UNKNOWN' (os.constants.errno has no entry) */
const UV_UNKNOWN = 4094;

export function errnoOf(code: string): number | undefined {
  return code === 'UNKNOWN' ? UV_UNKNOWN : errnoTable[code];
}

const descriptions: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  ENODEV: 'no such device',
  ENOMEM: 'cannot allocate memory',
  EINVAL: 'invalid argument',
  EFAULT: 'bad address',
  EBADF: 'bad file descriptor',
  ENOTTY: 'inappropriate ioctl for device',
  EMFILE: 'too many open files',
  ENOSPC: 'no space left on device',
  EBUSY: 'device or resource busy',
  EAGAIN: 'resource temporarily unavailable',
  EINTR: 'interrupted system call',
  EXDEV: 'not a dma-buf',
};

function describe(code: string): string {
  return descriptions[code] ?? 'system call failed';
}

/** How a user fixes EACCES/EPERM on a device node: heaps are root-only (0600) by default on
 *  desktop Linux (a udev rule grants a group). Android has no udev: its heaps are 0444 (the
 *  package opens them read-only, which is all ALLOC needs) and SELinux policy decides which
 *  domains may open which heap. */
export function accessHint(path: string, platform: string = process.platform): string {
  if (platform === 'android') {
    return (
      `permission denied opening ${path}: on Android, heap nodes are world-readable (0444) and ` +
      `access is decided by SELinux policy, not file modes or udev: this process's domain may not ` +
      `open ${path} (see 'ls -lZ /dev/dma_heap' and the avc denials in 'logcat'; an app gets only the ` +
      `heaps the device's policy grants apps, and no udev rule or chmod changes that), ` +
      `or pass { backend: 'software' } to use the software framework`
    );
  }
  const rule = path === '/dev/udmabuf' ? 'KERNEL=="udmabuf", GROUP="video", MODE="0660"' : 'SUBSYSTEM=="dma_heap", GROUP="video", MODE="0660"';
  return (
    `permission denied opening ${path}: the node is root-only by default. ` +
    `Grant a group access with a udev rule, e.g. /etc/udev/rules.d/90-dma-heap.rules: ${rule} ` +
    `(then 'udevadm control --reload && udevadm trigger' and add your user to 'video'), ` +
    `or pass { backend: 'software' } to use the software framework`
  );
}

/**
 * Attach context (path, heap) to an error thrown by a kernel. EACCES/EPERM opening a real
 * device node (`device: true`) gets the access hint (udev; SELinux on Android). Returns the same error object, so
 * errno/code/syscall stay intact.
 */
export function withContext<E>(err: E, ctx: { path?: string; heap?: string; device?: boolean }): E {
  // A system call's error only (a DmaHeapError, or Node's own with syscall and errno): never
  // an AbortSignal's reason or anything else a caller handed us, which is theirs, maybe frozen
  if (err instanceof DmaHeapError || (err instanceof Error && typeof (err as { syscall?: unknown }).syscall === 'string' && typeof (err as { errno?: unknown }).errno === 'number')) {
    const e = err as unknown as DmaHeapError;
    if (ctx.path !== undefined && e.path === undefined) e.path = ctx.path;
    if (ctx.heap !== undefined && e.heap === undefined) e.heap = ctx.heap;
    if (ctx.device && (e.code === 'EACCES' || e.code === 'EPERM') && ctx.path && !e.message.includes('permission denied opening')) {
      e.message = `${e.code}: ${accessHint(ctx.path)}, ${e.syscall}`;
    }
  }
  return err;
}

/** A buffer-level misuse that is not a syscall failure (closed buffer, wrong tier...). */
export class DmaBufStateError extends Error {
  /** what was misused: 'ERR_DMA_BUF_CLOSED', 'ERR_DMA_HEAP_POOL_EXHAUSTED'... (the throwing method's @throws says which) */
  code: DmaBufStateErrorCode;
  /**
   * The package makes these; a test double may too.
   *
   * @param code an `ERR_` code
   * @param message what went wrong, in words
   * @throws Nothing.
   * @example
   * ```ts
   * import { DmaBufStateError, openHeap } from 'dma-heap';
   * const buf = openHeap('system').alloc(4096);
   * buf.close();
   * try {
   *   buf.map();
   * } catch (err) {
   *   if (err instanceof DmaBufStateError) console.log(err.code); // 'ERR_DMA_BUF_CLOSED'
   * }
   * ```
   */
  constructor(code: DmaBufStateErrorCode, message: string) {
    super(message);
    this.name = 'DmaBufStateError';
    this.code = code;
  }
}

/** The one "this sync_file is closed" error, wherever a closed SyncFile is used: its own
 *  methods, DmaBuf.importSyncFile, sending it. */
export function syncFileClosed(what = 'this sync_file'): DmaBufStateError {
  return new DmaBufStateError('ERR_SYNC_FILE_CLOSED', `${what} is closed`);
}

/** The one "the addon is missing" error: what needed it, and why it did not load. */
export function addonMissing(what: string, reason: string | undefined): AddonMissingError {
  const err = new Error(`${what} needs the native addon: ${reason ?? 'it did not load'}`) as AddonMissingError;
  err.code = 'ERR_DMA_HEAP_NO_ADDON';
  return err;
}

const ERRNO_SET: ReadonlySet<string> = new Set(ERRNO_CODES);
const STATE_SET: ReadonlySet<string> = new Set(DMA_BUF_STATE_ERROR_CODES);
const CHANNEL_SET: ReadonlySet<string> = new Set(CHANNEL_ERROR_CODES);

/** the class whose instances carry `code`, or undefined for a code none of dma-heap's errors carries */
function carrierOf(code: string): (abstract new (...args: never[]) => Error) | undefined {
  if (ERRNO_SET.has(code)) return DmaHeapError;
  if (STATE_SET.has(code)) return DmaBufStateError;
  if (CHANNEL_SET.has(code)) return DmaBufChannelError;
  if (code === 'ERR_DMA_HEAP_NO_ADDON') return Error;
  return undefined;
}

/**
 * Whether `err` is one of dma-heap's errors and, given `code`, carries that code. The check is
 * by class as well as by code (a DmaHeapError for an errno name, a DmaBufStateError for a state
 * code...), so a `true` narrows `err` to the class that has the fields: `syscall`, `path` and
 * `heap` for an errno, `reason` for a channel code. `code` is typed DmaHeapErrorCode: a misspelt
 * one does not compile (and from JavaScript throws ERR_INVALID_ARG_VALUE rather than answer
 * false for ever).
 *
 * @param err anything caught (never throws for it; a Proxy is no dma-heap error)
 * @param code the code to match; without it, any error of dma-heap's (its three error classes
 *   and ERR_DMA_HEAP_NO_ADDON) matches
 * @returns true when `err` is that error; `err` is then typed DmaHeapErrorOf<typeof code>
 * @throws TypeError `ERR_INVALID_ARG_VALUE` for a `code` none of dma-heap's errors carries (from
 * JavaScript: TypeScript refuses it at compile time); never for `err`.
 * @example
 * ```ts
 * import { isDmaHeapError, openHeap } from 'dma-heap';
 *
 * using heap = openHeap('system');
 * try {
 *   heap.alloc(2 ** 50).close();
 * } catch (err) {
 *   if (!isDmaHeapError(err, 'ENOMEM')) throw err;
 *   console.warn(`${err.heap}: out of memory (${err.syscall})`); // err: DmaHeapError
 * }
 * // isDmaHeapError(err, 'ENOMEN') does not compile
 * ```
 */
export function isDmaHeapError<C extends DmaHeapErrorCode>(err: unknown, code: C): err is DmaHeapErrorOf<C>;
export function isDmaHeapError(err: unknown): err is DmaHeapErrorOf<DmaHeapErrorCode>;
export function isDmaHeapError(err: unknown, code?: DmaHeapErrorCode): boolean {
  const carrier = code === undefined ? undefined : carrierOf(code);
  if (code !== undefined && carrier === undefined) {
    throw invalidArgValue('code', code, "is not a code dma-heap's errors carry (see DmaHeapErrorCode)");
  }
  // a Proxy's traps would run under instanceof and the read of code: it is no error of ours
  if (typeof err !== 'object' || err === null || types.isProxy(err)) return false;
  if (code === undefined) {
    return (
      err instanceof DmaHeapError ||
      err instanceof DmaBufStateError ||
      err instanceof DmaBufChannelError ||
      (err instanceof Error && (err as { code?: unknown }).code === 'ERR_DMA_HEAP_NO_ADDON')
    );
  }
  return err instanceof carrier! && (err as { code?: unknown }).code === code;
}
