/**
 * The software dma-heap framework, the side its user sees: the configuration (profile, page
 * size, backing, the heaps and who may open them, fault injection) and the exporter API a
 * heap driver calls (dma_heap_add, dma_buf_export). The simulated kernel behind it (the fd
 * table, ioctl dispatch, mmap, poll: what a process's syscalls reach) is
 * simulated-kernel.ts, reached as `framework.kernel`.
 */
import type { Addon } from '../native/addon';
import { invalidArgType, invalidArgValue, outOfRange, validateBoolean, validateInteger, validateOptions } from '../args';
import { addonMissing } from '../errors';
import { addonStatus, loadAddon } from '../native/load';
import { type BackingMemory, JsBacking, MemfdBacking, nextIno } from './backing';
import { Cma } from './cma';
import { KernelDmaBuf, type DmaBufExportInfo, type DmaBufOps } from './dma-buf';
import { DmaHeap, type DmaHeapExportInfo, HeapRegistry, type Profile } from './dma-heap';
import { syscall } from './errno';
import { Faults } from './faults';
import { devNullSource, type FdSource } from './file';
import { builtinInitcalls } from './initcall';
import { hostPageSize } from './page-size';
import { type AccessPolicy, type Credentials, mayOpen, validateCredentials, validatePolicy } from './policy';
import { SimulatedKernel } from './simulated-kernel';

export interface FrameworkOptions {
  /** the ABI: 'mainline' (ALLOC at nr 0) or 'v14' (GET_FEATURES at 0, ALLOC at 1); default mainline */
  profile?: Profile;
  /** PAGE_SIZE; default the host's (see hostPageSize). A power of two >= 4096; with memfd
   *  backing a multiple of the host's, since mappings are real */
  pageSize?: number;
  /** default 'memfd' when the addon loads, else 'js' */
  backing?: 'memfd' | 'js';
  /** run the built-in heaps' initcalls: system and CMA (default true) */
  builtins?: boolean;
  /** the default CMA region; size 0 means none (no CMA heap), as without a CMA area */
  cma?: { size?: number };
  /** who may open heaps that have no policy of their own; default 'allow' */
  access?: AccessPolicy;
  /** the credentials policies are checked against; default the process's */
  credentials?: Partial<Credentials>;
}

const FRAMEWORK_OPTIONS = ['profile', 'pageSize', 'backing', 'builtins', 'cma', 'access', 'credentials'] as const;

/** 64 MiB, as many arm64 distro kernels set CONFIG_CMA_SIZE_MBYTES (Kconfig's default is 16, 0 on x86) */
export const DEFAULT_CMA_SIZE = 64 * 1024 * 1024;

/** dma_buf_ops of an exported backing, shared by all such buffers: map it, free it */
const BACKING_OPS: DmaBufOps<unknown> = {
  mmap: (dmabuf, vma) => dmabuf.backing!.mmap(vma),
  release: (dmabuf) => dmabuf.backing!.free(),
};

export class Framework {
  readonly backing: 'memfd' | 'js';
  readonly pageSize: number;
  readonly profile: Profile;
  /** fault injection (off until a rule or cap is set) */
  readonly faults = new Faults();
  /** the credentials access policies see */
  credentials: Credentials;
  /** the default CMA area (made with builtins, of cma.size), which the CMA heaps share */
  readonly cma?: Cma;
  /**
   * The simulated kernel: what `openHeap(name, { framework })` and the buffers it makes call
   * (open, ioctl, mmap, close), and what a test may call directly to drive it as a process's
   * syscalls would (`framework.kernel.ioctl(fd, cmd, arg)`).
   */
  readonly kernel: SimulatedKernel;

  private defaultAccess: AccessPolicy;
  /** @internal the addon if it loaded (memfds; /dev/null reservations it closes at env teardown) */
  readonly addon: Addon | null;
  /** @internal where a dma-buf's file reserves its fd number */
  readonly reserve: FdSource;
  /** @internal the heaps, by name and minor */
  readonly registry: HeapRegistry;


  constructor(options?: FrameworkOptions) {
    options = validateOptions(options, FRAMEWORK_OPTIONS);
    const profile = options.profile === undefined ? 'mainline' : options.profile; // null is no default
    if (profile !== 'mainline' && profile !== 'v14') throw invalidArgValue('options.profile', profile, "must be 'mainline' or 'v14'");
    this.profile = profile;

    const addon = loadAddon();
    const backing = options.backing === undefined ? (addon ? 'memfd' : 'js') : options.backing;
    if (backing !== 'memfd' && backing !== 'js') throw invalidArgValue('options.backing', backing, "must be 'memfd' or 'js'");
    if (backing === 'memfd' && !addon) throw addonMissing('memfd backing', addonStatus().reason);
    const builtins = validateBoolean(options.builtins, 'options.builtins', true);
    const cmaOptions = validateOptions(options.cma, ['size'], 'options.cma');
    const credentials = validateCredentials(options.credentials);
    this.backing = backing;
    this.addon = addon;
    this.reserve = devNullSource(addon);

    const host = hostPageSize(addon);
    const pageSize = options.pageSize === undefined ? host : options.pageSize;
    if (typeof pageSize !== 'number') throw invalidArgType('options.pageSize', 'of type number', pageSize);
    if (!Number.isSafeInteger(pageSize) || pageSize < 4096 || !Number.isInteger(Math.log2(pageSize))) {
      throw outOfRange('options.pageSize', 'a power of two >= 4096', pageSize);
    }
    if (backing === 'memfd' && pageSize % host !== 0) {
      throw outOfRange('options.pageSize', `a multiple of the host's ${host} with memfd backing`, pageSize);
    }
    this.pageSize = pageSize;

    this.credentials = credentials;
    this.defaultAccess = options.access === undefined ? 'allow' : options.access;
    validatePolicy(this.defaultAccess);
    this.registry = new HeapRegistry(profile);
    this.kernel = new SimulatedKernel(this, addon);

    if (builtins) {
      // dma_contiguous_reserve: the default CMA area exists before any driver's init runs
      const size = validateInteger(cmaOptions.size === undefined ? DEFAULT_CMA_SIZE : cmaOptions.size, 'options.cma.size', 0, Number.MAX_SAFE_INTEGER);
      const pages = Math.floor(size / pageSize);
      if (pages > 0) this.cma = new Cma('reserved', pages * pageSize, pageSize);
      for (const init of builtinInitcalls()) init(this);
    }
  }

  // ---- the exporter side (what a heap driver calls) ----

  /** dma_heap_add: throws DmaHeapError EINVAL (no name, no allocate, duplicate) or EBUSY (128 heaps) */
  addHeap(info: DmaHeapExportInfo): DmaHeap {
    return syscall('dma_heap_add', (ctx) => {
      if (typeof info?.name === 'string') ctx.heap = info.name;
      if (info?.access !== undefined) validatePolicy(info.access);
      return this.registry.add(info, nextIno());
    });
  }

  /** dma_buf_export: a dma-buf holding one reference, which the framework hands to its first fd */
  dmaBufExport<P>(info: DmaBufExportInfo<P>): KernelDmaBuf<P> {
    return syscall('dma_buf_export', () => new KernelDmaBuf(info, this.reserve));
  }

  /**
   * Export `backing` as a dma-buf: its mmap maps the backing; its release frees the backing,
   * then runs `release` (the heap's own bookkeeping). If the export fails, the same happens
   * before the error leaves: the caller has nothing to undo.
   */
  exportBacking<P>(info: { expName: string; size: number; flags: number; backing: BackingMemory; priv: P; release?: () => void }): KernelDmaBuf<P> {
    const { backing, release } = info;
    let dmabuf: KernelDmaBuf<P>;
    try {
      dmabuf = this.dmaBufExport({ expName: info.expName, size: info.size, flags: info.flags, priv: info.priv, backing, ops: BACKING_OPS as DmaBufOps<P> });
    } catch (e) {
      try {
        backing.free();
      } finally {
        release?.();
      }
      throw e;
    }
    if (release) dmabuf.exporterRelease = release; // runs after ops.release
    return dmabuf;
  }

  /** Zeroed memory for a buffer: a memfd named `dma-heap:<name>`, or an ArrayBuffer. */
  allocBacking(size: number, name: string): BackingMemory {
    validateInteger(size, 'size', 1, Number.MAX_SAFE_INTEGER);
    return this.backing === 'memfd'
      ? new MemfdBacking(this.addon as Addon, size, `dma-heap:${name}`)
      : new JsBacking(size, this.reserve);
  }

  /** The access policy of one heap, or (one argument) the default for heaps without one. */
  setAccess(policy: AccessPolicy): void;
  setAccess(name: string, policy: AccessPolicy | undefined): void;
  setAccess(a: string | AccessPolicy, b?: AccessPolicy): void {
    if (arguments.length === 1) {
      validatePolicy(a as AccessPolicy);
      this.defaultAccess = a as AccessPolicy;
      return;
    }
    if (typeof a !== 'string') throw invalidArgType('name', 'of type string', a);
    const heap = this.registry.find(a);
    if (!heap) throw outOfRange('name', 'the name of a registered heap', a);
    if (b !== undefined) validatePolicy(b);
    heap.access = b;
  }

  /** The heap registered as `name`, if any (its ops, access policy, minor). */
  heap(name: string): DmaHeap | undefined {
    return this.registry.find(name);
  }

  /** @internal whether the credentials may open `heap`: its own policy, or the default */
  mayOpen(heap: DmaHeap): boolean {
    return mayOpen(heap.access ?? this.defaultAccess, { ...this.credentials, heap: heap.name, path: heap.path });
  }

  /**
   * Unmap every mapping and close every fd (test teardown). The framework is finished after
   * this: it opens and adopts nothing more, so a Heap or DmaBuf still holding one of its old
   * fd numbers (or its GC finalizer) can never reach a newer file that reused the number.
   */
  dispose(): void {
    this.kernel.dispose();
  }
}
