import { constants } from 'node:os';

/**
 * A failed system call, shaped like Node's own (fs) errors: `code` is the errno
 * name, `errno` the negated number (as Node reports it), `syscall` what failed,
 * `path` the device or heap path when there is one.
 */
export class DmaHeapError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  heap?: string;

  /** `detail.errno`: the negated number when the caller has it (the addon does), else from `code` */
  constructor(code: string, syscall: string, detail?: { path?: string; heap?: string; message?: string; errno?: number }) {
    const path = detail?.path;
    super(`${code}: ${detail?.message ?? describe(code)}, ${syscall}${path ? ` '${path}'` : ''}`);
    this.name = 'DmaHeapError';
    this.code = code;
    this.errno = detail?.errno ?? -(errnoOf(code) ?? 0);
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
    if (detail?.heap !== undefined) this.heap = detail.heap;
  }
}

const errnoTable = constants.errno as Record<string, number>;

export function errnoOf(code: string): number | undefined {
  return errnoTable[code];
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
  if (err && typeof err === 'object' && 'code' in err) {
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
  code: string;
  constructor(code: string, message: string) {
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
export function addonMissing(what: string, reason: string | undefined): Error & { code: 'ERR_DMA_HEAP_NO_ADDON' } {
  const err = new Error(`${what} needs the native addon: ${reason ?? 'it did not load'}`) as Error & { code: 'ERR_DMA_HEAP_NO_ADDON' };
  err.code = 'ERR_DMA_HEAP_NO_ADDON';
  return err;
}
