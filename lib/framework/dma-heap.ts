/**
 * struct dma_heap, the heap registry and the heap device's ioctl dispatcher, after
 * drivers/dma-buf/dma-heap.c: mainline (dma_heap_add, dma_heap_ioctl,
 * dma_heap_ioctl_allocate, dma_heap_buffer_alloc) and the v14 seed patch
 * ("dma-buf: Add dma-buf heaps framework", Nov 2019), which had GET_FEATURES.
 */
import {
  type AllocationData,
  decodeAllocationData,
  decodeU64,
  encodeAllocationData,
  encodeU64,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_GET_FEATURES,
  DMA_HEAP_VALID_FD_FLAGS,
  DMA_HEAP_VALID_HEAP_FLAGS,
  iocDecode,
  IOC_IN,
  IOC_OUT,
  NUM_HEAP_MINORS,
  pageAlign,
} from '../uapi';
import type { KernelDmaBuf } from './dma-buf';
import type { FileOperations } from './file';
import { errno } from './errno';
import type { AccessPolicy } from './policy';

/** The heap ioctl ABI: 'mainline' (ALLOC at nr 0) or 'v14', the 2019 seed patch (GET_FEATURES at 0, ALLOC at 1). */
export type Profile = 'mainline' | 'v14';

/** struct dma_heap_ops */
export interface DmaHeapOps {
  /**
   * return a dma-buf made with Framework.dmaBufExport(); throw an errno (errno('ENOMEM')) to fail
   *
   * @param heap the heap being allocated from
   * @param len bytes, already page-aligned by the core
   * @param fdFlags the new fd's flags (O_RDWR, O_CLOEXEC): pass them as the export's `flags`
   * @param heapFlags the heap flags of the request (mainline defines none)
   * @returns the exported dma-buf
   */
  allocate(heap: DmaHeap, len: bigint, fdFlags: number, heapFlags: bigint): KernelDmaBuf;
}

/** struct dma_heap_export_info, plus the simulation's access policy for the device node */
export interface DmaHeapExportInfo {
  /** the heap's name: its node under /dev/dma_heap */
  name: string;
  /** its allocate op */
  ops: DmaHeapOps;
  /** the driver's data, read back with heap.getDrvdata() */
  priv?: unknown;
  /** who may open /dev/dma_heap/<name>; default: the framework's (allow) */
  access?: AccessPolicy;
}

/** struct dma_heap */
export class DmaHeap {
  constructor(
    /** the heap's name */
    readonly name: string,
    /** its allocate op */
    readonly ops: DmaHeapOps,
    private readonly priv: unknown,
    /** the device's minor number (xa_alloc in 0..NUM_HEAP_MINORS-1) */
    readonly minor: number,
    /** the device node's inode number (its fdinfo `ino`) */
    readonly ino: number,
    /** its own access policy; undefined: the framework's default */
    public access: AccessPolicy | undefined,
  ) {}

  /** `/dev/dma_heap/<name>` */
  get path(): string {
    return `/dev/dma_heap/${this.name}`;
  }
  /**
   * dma_heap_get_drvdata
   *
   * @returns DmaHeapExportInfo.priv
   */
  getDrvdata(): unknown {
    return this.priv;
  }
  /**
   * dma_heap_get_name
   *
   * @returns the heap's name
   */
  getName(): string {
    return this.name;
  }
}

/** The minors xarray and the heap list. There is no removal: mainline has no dma_heap_remove. */
export class HeapRegistry {
  private readonly minors: Array<DmaHeap | undefined> = [];
  private readonly list: DmaHeap[] = [];
  /** told after each heap is added (device_create's uevent, as /dev/dma_heap/<name> appears) */
  private readonly watchers = new Set<() => void>();

  constructor(private readonly profile: Profile) {}

  /**
   * dma_heap_add. Mainline order: name and ops (EINVAL), a minor from xa_alloc (EBUSY when all
   * NUM_HEAP_MINORS are taken), then the unique-name check (EINVAL). v14 checked the name before
   * taking a minor, so a duplicate is EINVAL there even when the minors are exhausted.
   * (On a real kernel device_create, which mainline runs before the name check, would likely
   * fail a duplicate first with EEXIST from sysfs; the simulation has no sysfs.)
   */
  add(info: DmaHeapExportInfo, ino: number): DmaHeap {
    if (!info || typeof info.name !== 'string' || info.name === '') throw errno('EINVAL');
    if (!info.ops || typeof info.ops.allocate !== 'function') throw errno('EINVAL');
    if (this.profile === 'v14' && this.find(info.name)) throw errno('EINVAL');
    let minor = 0;
    while (minor < NUM_HEAP_MINORS && this.minors[minor]) minor++; // xa_alloc: the lowest free index
    if (minor === NUM_HEAP_MINORS) throw errno('EBUSY');
    if (this.find(info.name)) throw errno('EINVAL'); // xa_erase(minor) on this path: nothing was stored yet
    const heap = new DmaHeap(info.name, info.ops, info.priv, minor, ino, info.access);
    this.minors[minor] = heap;
    this.list.push(heap);
    for (const changed of [...this.watchers]) changed();
    return heap;
  }

  /** call `changed` after every heap added; returns the function that stops it */
  watch(changed: () => void): () => void {
    const w = () => changed();
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  find(name: string): DmaHeap | undefined {
    return this.list.find((h) => h.name === name);
  }

  all(): DmaHeap[] {
    return [...this.list];
  }
}

/** What the dispatcher needs from the framework to allocate. */
export interface HeapAllocator {
  /** dma_heap_buffer_alloc after PAGE_ALIGN: ops->allocate, then dma_buf_fd; returns the fd */
  bufferAlloc(heap: DmaHeap, len: bigint, fdFlags: number, heapFlags: bigint): number;
  /** put_unused_fd + dma_buf_put: undo bufferAlloc when the struct can't be copied back */
  unreserve(fd: number): void;
  readonly pageSize: number;
}

type Handler = (heap: DmaHeap, kdata: Uint8Array, k: HeapAllocator) => void;

/** dma_heap_ioctl_allocate on the struct as copied in (+ dma_heap_buffer_alloc's PAGE_ALIGN and
 *  zero check): the new buffer's fd */
export function dmaHeapAllocate(heap: DmaHeap, data: AllocationData, k: HeapAllocator): number {
  if (data.fd) throw errno('EINVAL');
  if (data.fdFlags & ~DMA_HEAP_VALID_FD_FLAGS) throw errno('EINVAL');
  if (data.heapFlags & ~DMA_HEAP_VALID_HEAP_FLAGS) throw errno('EINVAL');
  const len = pageAlign(data.len, k.pageSize); // u64: a len near 2^64 wraps to 0
  if (len === 0n) throw errno('EINVAL');
  return k.bufferAlloc(heap, len, data.fdFlags, data.heapFlags);
}

const allocate: Handler = (heap, kdata, k) => {
  const data = decodeAllocationData(kdata);
  data.fd = dmaHeapAllocate(heap, data, k);
  encodeAllocationData(data, kdata); // copy_to_user of the struct, fd filled in
};

/**
 * v14's dma_heap_ioctl_get_features: "nothing should be passed in" (a non-zero features is
 * EINVAL), then features = DMA_HEAP_SUPPORTED_FEATURES (0). That EINVAL can never fire through
 * the dispatcher: GET_FEATURES is _IOR, so `ucmd & kcmd & IOC_IN` is 0 for every user cmd,
 * in_size is 0 and kdata is zero-filled before the handler runs. Whatever the caller put in the
 * field is ignored and comes back as 0.
 */
const getFeatures: Handler = (_heap, kdata) => {
  if (decodeU64(kdata) !== 0n) throw errno('EINVAL');
  kdata.set(encodeU64(0n)); // DMA_HEAP_SUPPORTED_FEATURES
};

/** dma_heap_ioctl_cmds[]: the index is _IOC_NR */
const COMMANDS: Record<Profile, Array<{ kcmd: number; handler: Handler }>> = {
  mainline: [{ kcmd: DMA_HEAP_IOCTL_ALLOC, handler: allocate }],
  v14: [
    { kcmd: DMA_HEAP_V14_IOCTL_GET_FEATURES, handler: getFeatures },
    { kcmd: DMA_HEAP_V14_IOCTL_ALLOC, handler: allocate },
  ],
};

/** the profile's ALLOC command: the one whose whole struct the typed path may skip encoding */
export const allocCmd = (profile: Profile): number => COMMANDS[profile].find((c) => c.handler === allocate)!.kcmd;

/**
 * dma_heap_ioctl. `arg` is the user memory the pointer reaches (Framework.ioctl gives the same
 * zeroed scratch the addon gives the real kernel; an empty one for a NULL pointer): touching
 * past its end is a fault (EFAULT).
 * - _IOC_NR(ucmd) >= the table's length: EINVAL (not ENOTTY); the magic byte is never checked.
 * - in_size = _IOC_SIZE(ucmd) if ucmd and kcmd both have IOC_IN, else 0; out_size likewise
 *   with IOC_OUT; kdata is max(in, out, _IOC_SIZE(kcmd)) bytes, zero past in_size.
 * - copy-back differs by era. The 2019 patch (v14) copied out_size bytes back after the switch
 *   whatever the handler returned, and a failed copy-back was EFAULT (the fd stayed installed:
 *   a leak). 6.12 (Debian's 6.12.117 source, and measured: _IOR with a NULL pointer is EINVAL,
 *   not EFAULT) copies back only after a successful ALLOC and installs the fd only then: a
 *   failed copy-back releases the buffer and the fd and is EFAULT. The mainline profile is 6.12.
 */
export function dmaHeapIoctl(profile: Profile, heap: DmaHeap, ucmd: number, arg: Uint8Array, k: HeapAllocator): number {
  ucmd >>>= 0;
  const cmds = COMMANDS[profile];
  const nr = iocDecode(ucmd).nr;
  if (nr >= cmds.length) throw errno('EINVAL');
  const { kcmd, handler } = cmds[nr];

  const drvSize = iocDecode(kcmd).size;
  let outSize = iocDecode(ucmd).size;
  let inSize = outSize;
  if ((ucmd & kcmd & IOC_IN) === 0) inSize = 0;
  if ((ucmd & kcmd & IOC_OUT) === 0) outSize = 0;
  const kdata = new Uint8Array(Math.max(inSize, outSize, drvSize)); // zero-filled

  if (arg.length < inSize) throw errno('EFAULT'); // copy_from_user: goto err, nothing copied back
  kdata.set(arg.subarray(0, inSize));

  if (profile === 'mainline') {
    handler(heap, kdata, k); // a failure returns at once: nothing is copied back
    if (arg.length < outSize) {
      k.unreserve(decodeAllocationData(kdata).fd);
      throw errno('EFAULT');
    }
    arg.set(kdata.subarray(0, outSize));
    return 0;
  }

  let failure: unknown;
  try {
    handler(heap, kdata, k);
  } catch (e) {
    failure = e;
  }
  // copy_to_user: what fits is written, the rest faults
  arg.set(kdata.subarray(0, Math.min(outSize, arg.length)));
  if (arg.length < outSize) throw errno('EFAULT');
  if (failure !== undefined) throw failure;
  return 0;
}

/** dma_heap_fops for one framework (its ABI profile and its allocator): ioctl only; no mmap, no seek */
export function dmaHeapFops(profile: Profile, k: HeapAllocator): FileOperations<DmaHeap> {
  return {
    unlockedIoctl(file, cmd, arg, ctx) {
      ctx.path = file.priv.path;
      ctx.heap = file.priv.name;
      return dmaHeapIoctl(profile, file.priv, cmd, arg, k);
    },
  };
}
