/**
 * struct dma_buf and its file operations, after drivers/dma-buf/dma-buf.c (mainline):
 * dma_buf_export, dma_buf_ioctl (SYNC, SET_NAME_A/B), dma_buf_mmap_internal,
 * dma_buf_show_fdinfo.
 */
import {
  decodeU64,
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_NAME_LEN,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_VALID_FLAGS_MASK,
  O_ACCMODE,
  O_NONBLOCK,
} from '../uapi';
import type { FdinfoLines } from '../fdinfo';
import { type BackingMemory, nextIno, type Vma } from './backing';
import { errno, type SyscallContext } from './errno';
import type { HeapAccount } from './faults';
import { dmaBufFenceIoctl, dmaBufPoll, dmaBufPollFences, syncStartCheck } from './dma-buf-fences';
import { File, type FdSource, type FileOperations } from './file';


/** The direction of a CPU access bracket, as the kernel's enum dma_data_direction names it. */
export type DmaDataDirection = 'DMA_BIDIRECTIONAL' | 'DMA_TO_DEVICE' | 'DMA_FROM_DEVICE';

/** struct dma_buf_ops, the part a CPU-only simulation has: no attach/map_dma_buf. */
export interface DmaBufOps<P = unknown> {
  /**
   * fill vma.view (and vma.close); absent: mmap fails EINVAL
   *
   * @param dmabuf the buffer
   * @param vma the mapping request to fill
   */
  mmap?(dmabuf: KernelDmaBuf<P>, vma: Vma): void;
  /**
   * DMA_BUF_IOCTL_SYNC START: make the memory coherent for the CPU; throw an errno to fail the ioctl.
   *
   * @param dmabuf the buffer
   * @param direction what the CPU will do
   */
  beginCpuAccess?(dmabuf: KernelDmaBuf<P>, direction: DmaDataDirection): void;
  /**
   * DMA_BUF_IOCTL_SYNC END: hand the memory back to the device.
   *
   * @param dmabuf the buffer
   * @param direction what the CPU did
   */
  endCpuAccess?(dmabuf: KernelDmaBuf<P>, direction: DmaDataDirection): void;
  /**
   * the last reference went: free what priv holds
   *
   * @param dmabuf the buffer
   */
  release(dmabuf: KernelDmaBuf<P>): void;
}

/** struct dma_buf_export_info */
export interface DmaBufExportInfo<P = unknown> {
  /** the exporter's name (fdinfo's exp_name): the heap's, for a heap */
  expName: string;
  /** bytes, a positive integer */
  size: number;
  /** the buffer's ops */
  ops: DmaBufOps<P>;
  /** the exporter's data (not null or undefined: dma_buf_export refuses a NULL priv) */
  priv: P;
  /** the fd_flags of the allocation: the file's access mode comes from them */
  flags: number;
  /** memory from Framework.allocBacking(): gives the buffer its fds' identity (a memfd's) */
  backing?: BackingMemory;
}

/** The CPU-access state SYNC records (begin/end are cache maintenance, not a lock). */
export interface CpuAccessState {
  /** the direction of the last BEGIN not yet followed by an END, else null */
  active: DmaDataDirection | null;
  /** BEGINs and ENDs seen: how a test sees that a bracket was opened and closed */
  begins: number;
  /** ENDs seen */
  ends: number;
}

/** struct dma_buf: the kernel's object behind a framework buffer's fds (what `framework.kernel.dmaBuf(fd)` returns). */
export class KernelDmaBuf<P = unknown> {
  /** bytes */
  readonly size: number;
  /** the exporter's name */
  readonly expName: string;
  /** DMA_BUF_SET_NAME; null until set (fdinfo shows `name:` only then, even for "") */
  name: string | null = null;
  #ino: number | undefined;
  /** its struct file */
  readonly file: File<KernelDmaBuf<P>>;
  /** its ops */
  readonly ops: DmaBufOps<P>;
  /** the exporter's data (a CmaBuffer for the CMA heap) */
  readonly priv: P;
  /** its memory, when it came from Framework.allocBacking() */
  readonly backing?: BackingMemory;
  #cpuAccess: CpuAccessState | undefined;
  /** the exporter's own bookkeeping, run after ops.release (exportBacking's `release`) */
  exporterRelease: (() => void) | null = null;
  /** @internal the heap usage this buffer's size is charged to, given back at release */
  account: HeapAccount | null = null;

  /** dma_buf_export: validate, then make the struct file (one reference, the caller's).
   *  `fdSource` serves a buffer without backing (a /dev/null reservation). */
  constructor(info: DmaBufExportInfo<P>, fdSource: FdSource) {
    // dma_buf_export refuses a missing priv/ops/release (map_dma_buf is not modelled)
    if (!info || info.priv == null || !info.ops || typeof info.ops.release !== 'function') throw errno('EINVAL');
    if (typeof info.expName !== 'string' || info.expName === '') throw errno('EINVAL');
    if (!Number.isSafeInteger(info.size) || info.size <= 0) throw errno('EINVAL');
    this.size = info.size;
    this.expName = info.expName;
    this.ops = info.ops;
    this.priv = info.priv;
    this.backing = info.backing;
    if (!info.backing) this.#ino = nextIno();
    // dma_buf_getfile: f_flags = flags & (O_ACCMODE | O_NONBLOCK)
    this.file = new File<KernelDmaBuf<P>>(this, dmaBufFops as FileOperations<KernelDmaBuf<P>>, info.flags & (O_ACCMODE | O_NONBLOCK), this, info.backing?.fdSource ?? fdSource);
  }

  /** what SYNC recorded; made at the first SYNC or when asked (most buffers never sync) */
  get cpuAccess(): CpuAccessState {
    return (this.#cpuAccess ??= { active: null, begins: 0, ends: 0 });
  }

  /** the inode fdinfo shows (a memfd's is read when first asked) */
  get ino(): number {
    return (this.#ino ??= this.backing?.ino ?? nextIno());
  }


  /**
   * dma_buf_show_fdinfo: the lines after procfs's common ones. `count` is file_count(file) - 1
   *  (procfs's own reference): one per fd and per live mapping, as mmap's vm_file = get_file()
   *
   * @returns the lines, as [key, value] pairs
   */
  showFdinfo(): FdinfoLines {
    const lines: FdinfoLines = [
      ['size', this.size],
      ['count', this.file.fCount],
      ['exp_name', this.expName],
    ];
    if (this.name !== null) lines.push(['name', this.name]);
    return lines;
  }
}

/** dma_buf_ioctl: exact command numbers; anything else ENOTTY. `arg` is the user memory. */
export function dmaBufIoctl(dmabuf: KernelDmaBuf, cmd: number, arg: Uint8Array, ctx: SyscallContext = {}): number {
  switch (cmd >>> 0) {
    case DMA_BUF_IOCTL_SYNC: {
      if (arg.length < 8) throw errno('EFAULT'); // copy_from_user(&sync, arg, sizeof(sync))
      const flags = decodeU64(arg);
      if (flags & ~DMA_BUF_SYNC_VALID_FLAGS_MASK) throw errno('EINVAL');
      let direction: DmaDataDirection;
      switch (flags & DMA_BUF_SYNC_RW) {
        case 1n:
          direction = 'DMA_FROM_DEVICE';
          break;
        case 2n:
          direction = 'DMA_TO_DEVICE';
          break;
        case 3n:
          direction = 'DMA_BIDIRECTIONAL';
          break;
        default:
          throw errno('EINVAL'); // neither READ nor WRITE
      }
      if (flags & DMA_BUF_SYNC_END) {
        dmabuf.ops.endCpuAccess?.(dmabuf, direction);
        dmabuf.cpuAccess.ends++;
        dmabuf.cpuAccess.active = null;
      } else {
        syncStartCheck(dmabuf, flags); // the wait for conflicting fences: EDEADLK here
        dmabuf.ops.beginCpuAccess?.(dmabuf, direction);
        dmabuf.cpuAccess.begins++;
        dmabuf.cpuAccess.active = direction;
      }
      return 0;
    }
    case DMA_BUF_SET_NAME_A:
    case DMA_BUF_SET_NAME_B:
      dmabuf.name = strndupUser(arg, DMA_BUF_NAME_LEN);
      return 0;
    default: {
      const r = ctx.syncFiles ? dmaBufFenceIoctl(dmabuf, cmd, arg, ctx.syncFiles) : null;
      if (r === null) throw errno('ENOTTY');
      return r;
    }
  }
}

/**
 * strndup_user(arg, n): the NUL must come within n bytes (so at most n-1 characters) else
 * EINVAL; running into memory the caller did not pass (the end of `arg`) first is EFAULT.
 */
function strndupUser(arg: Uint8Array, n: number): string {
  const nul = arg.subarray(0, n).indexOf(0);
  if (nul < 0) throw errno(arg.length < n ? 'EFAULT' : 'EINVAL');
  return Buffer.from(arg.buffer, arg.byteOffset, nul).toString('utf8');
}

/**
 * dma_buf_mmap_internal's checks: the exporter must have mmap (else EINVAL) and the pages asked
 * for must lie within the buffer: vm_pgoff + vma_pages(vma) > size >> PAGE_SHIFT is EINVAL.
 */
export function dmaBufMmapCheck(dmabuf: KernelDmaBuf, vma: Vma, pageSize: number): void {
  if (!dmabuf.ops.mmap) throw errno('EINVAL');
  // The kernel compares with size >> PAGE_SHIFT; its dma-bufs are whole pages, so rounding up is
  // the same for them. Another program's shared memory (an adopted memfd: GStreamer's is the
  // frame plus its alignment, 12295 bytes for 12288) ends mid-page: its last page maps too.
  if (vma.pgoff + Math.ceil(vma.length / pageSize) > Math.ceil(dmabuf.size / pageSize)) throw errno('EINVAL');
}

/** dma_buf_mmap_internal: the checks, then the exporter's mmap op fills the vma */
export function dmaBufMmap(dmabuf: KernelDmaBuf, vma: Vma, pageSize: number): void {
  dmaBufMmapCheck(dmabuf, vma, pageSize);
  dmabuf.ops.mmap?.(dmabuf, vma);
  if (!(vma.view instanceof Uint8Array)) throw errno('EINVAL'); // an exporter bug, not a user one
}

/** dma_buf_fops */
export const dmaBufFops: FileOperations<KernelDmaBuf> = {
  unlockedIoctl: (file, cmd, arg, ctx) => dmaBufIoctl(file.priv, cmd, arg, ctx),
  poll: (file, requested) => dmaBufPoll(file.priv, requested),
  pollFences: (file, requested) => dmaBufPollFences(file.priv, requested),
  llseekEnd: (file) => file.priv.size,
  mmap: (file, vma, pageSize) => dmaBufMmap(file.priv, vma, pageSize),
  showFdinfo: (file) => file.priv.showFdinfo(),
  release: (file) => dmaBufRelease(file.priv),
};

/** dma_buf_release: the exporter's release, its own bookkeeping, then the accounting, each
 *  whatever the others threw (the first error leaves) */
function dmaBufRelease(dmabuf: KernelDmaBuf): void {
  let failure: { error: unknown } | undefined;
  try {
    dmabuf.ops.release(dmabuf);
  } catch (error) {
    failure = { error };
  }
  try {
    dmabuf.exporterRelease?.();
  } catch (error) {
    failure ??= { error };
  }
  dmabuf.account?.uncharge(dmabuf.size);
  if (failure) throw failure.error;
}

/** is_dma_buf_file: the file's f_op is dma_buf_fops */
export function dmaBufOf(file: File): KernelDmaBuf | undefined {
  return file.fops === (dmaBufFops as FileOperations) ? (file.priv as KernelDmaBuf) : undefined;
}
