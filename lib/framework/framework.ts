/**
 * The software dma-heap framework, the side its user sees: the configuration (profile, page
 * size, backing, the heaps and who may open them, fault injection) and the exporter API a
 * heap driver calls (dma_heap_add, dma_buf_export). The simulated kernel behind it (the fd
 * table, ioctl dispatch, mmap, poll: what a process's syscalls reach) is
 * simulated-kernel.ts, reached as `framework.kernel`.
 */
import type { Addon } from '../native/addon';
import { invalidArgType, invalidArgValue, outOfRange, validateArray, validateBoolean, validateInteger, validateOptions } from '../args';
import { addonMissing } from '../errors';
import { addonStatus, loadAddon } from '../native/load';
import { type BackingMemory, JsBacking, MemfdBacking, nextIno } from './backing';
import { Cma } from './cma';
import { CONTIGUOUS_HEAP_NAMES, heapAccounted, heapKind, isProtectedHeapName, type HeapKind, type HeapTraits } from '../heap-kind';
import { KernelDmaBuf, type DmaBufExportInfo, type DmaBufOps } from './dma-buf';
import { DmaHeap, type DmaHeapExportInfo, HeapRegistry, type Profile } from './dma-heap';
import { syscall } from './errno';
import { Faults } from './faults';
import { devNullSource, type FdSource } from './file';
import { builtinInitcalls } from './initcall';
import { hostPageSize } from './page-size';
import { type AccessPolicy, type Credentials, mayOpen, validateCredentials, validatePolicy } from './policy';
import { SimulatedKernel } from './simulated-kernel';

/** Options of {@link Framework}'s constructor: the ABI, memory, built-in heaps, access. */
export interface FrameworkOptions {
  /** the ABI: 'mainline' (ALLOC at nr 0) or 'v14' (GET_FEATURES at 0, ALLOC at 1); default mainline */
  profile?: Profile;
  /**
   * Which mainline kernel the heaps follow (profile 'mainline' only): '7.3' (default: the CMA
   * area as `default_cma_region` and its legacy name, a heap per CMA region, protected heaps,
   * mem_accounting) or '6.12' (the CMA area under its legacy name only; no regions, protected
   * heaps or accounting: those options are refused).
   */
  release?: KernelRelease;
  /** PAGE_SIZE; default the host's (see hostPageSize). A power of two >= 4096; with memfd
   *  backing a multiple of the host's, since mappings are real */
  pageSize?: number;
  /** default 'memfd' when the addon loads, else 'js' */
  backing?: 'memfd' | 'js';
  /** run the built-in heaps' initcalls: system and CMA (default true) */
  builtins?: boolean;
  /** the default CMA region; size 0 means none (no CMA heap), as without a CMA area */
  cma?: {
    /** bytes; default {@link DEFAULT_CMA_SIZE} */
    size?: number;
    /** the device tree's reusable shared-dma-pool regions (release '7.3'): each a CMA area with
     *  a heap of its name, as a board's `video-memory` node gives one */
    regions?: CmaRegion[];
  };
  /** the TEE's protected heaps (release '7.3', tee_heap of 6.18): `protected,<id>` heaps whose
   *  buffers have no mmap, as OP-TEE registers them when the secure world offers that memory */
  protectedHeaps?: ProtectedHeapId[];
  /** dma_heap.mem_accounting (release '7.3'): the system heap's allocations are charged to the
   *  allocating process's memory cgroup (listHeaps() says `accounted`; the framework has no
   *  cgroups to charge) */
  memAccounting?: boolean;
  /** who may open heaps that have no policy of their own; default 'allow' */
  access?: AccessPolicy;
  /** the credentials policies are checked against; default the process's */
  credentials?: Partial<Credentials>;
}

const FRAMEWORK_OPTIONS = ['profile', 'release', 'pageSize', 'backing', 'builtins', 'cma', 'protectedHeaps', 'memAccounting', 'access', 'credentials'] as const;

/** The mainline kernels the framework's heaps can follow: what each registers and reports. */
export type KernelRelease = '6.12' | '7.3';
/** tee_heap.c's heap ids (enum tee_dma_heap_id): each heap is named `protected,<id>` */
export type ProtectedHeapId = 'secure-video' | 'trusted-ui' | 'secure-video-record';
const PROTECTED_HEAP_IDS: readonly ProtectedHeapId[] = ['secure-video', 'trusted-ui', 'secure-video-record'];

/** A reserved-memory region of the device tree (compatible "shared-dma-pool", reusable): a CMA area. */
export interface CmaRegion {
  /** the node's name, unit address included when it has one: the area's and its heap's (`video-memory`, `video@60000000`) */
  name: string;
  /** bytes, a whole number of pages */
  size: number;
}

/** 64 MiB, as many arm64 distro kernels set CONFIG_CMA_SIZE_MBYTES (Kconfig's default is 16, 0 on x86) */
export const DEFAULT_CMA_SIZE = 64 * 1024 * 1024;

/** dma_buf_ops of an exported backing, shared by all such buffers: map it, free it */
const BACKING_OPS: DmaBufOps<unknown> = {
  mmap: (dmabuf, vma) => dmabuf.backing!.mmap(vma),
  release: (dmabuf) => dmabuf.backing!.free(),
};

/**
 * A software dma-heap framework of your own: its heaps, who may open them, fault injection, and
 * the exporter calls a heap driver makes. Pass it as `openHeap(name, { framework })`.
 */
export class Framework {
  /** where buffers' pages live: 'memfd' (a real fd others can map) or 'js' (JS memory) */
  readonly backing: 'memfd' | 'js';
  /** PAGE_SIZE: buffers are rounded up to it */
  readonly pageSize: number;
  /** the ioctl ABI its heaps speak: 'mainline' or 'v14' */
  readonly profile: Profile;
  /** fault injection (off until a rule or cap is set) */
  readonly faults = new Faults();
  /** the credentials access policies see */
  credentials: Credentials;
  /** the default CMA area (made with builtins, of cma.size), which the CMA heaps share */
  readonly cma?: Cma;
  /** which mainline kernel's heaps it follows ('mainline' profile): '7.3' or '6.12' */
  readonly release: KernelRelease;
  /** the device tree's CMA regions (cma.regions), each with its own heap */
  readonly cmaRegions: readonly Cma[] = [];
  /** the TEE's protected heaps to register (protectedHeaps) */
  readonly protectedHeaps: readonly ProtectedHeapId[];
  /** dma_heap.mem_accounting */
  readonly memAccounting: boolean;
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


  /**
   * A new framework, its built-in heaps (system and CMA) registered unless `builtins: false`.
   *
   * @param options `profile`, `pageSize`, `backing`, `builtins`, `cma`, `access`, `credentials`
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options (a profile,
   * backing or policy that is none, an unknown key); RangeError `ERR_OUT_OF_RANGE` for a page size
   * that is no power of two >= 4096 (or, with memfd backing, no multiple of the host's) or a bad
   * cma.size.
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` for `backing: 'memfd'` without the native addon.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework({ backing: 'js', cma: { size: 16 << 20 } });
   * using heap = openHeap('system', { framework });
   * ```
   */
  constructor(options?: FrameworkOptions) {
    options = validateOptions(options, FRAMEWORK_OPTIONS);
    const profile = options.profile === undefined ? 'mainline' : options.profile; // null is no default
    if (profile !== 'mainline' && profile !== 'v14') throw invalidArgValue('options.profile', profile, "must be 'mainline' or 'v14'");
    this.profile = profile;
    const release = options.release === undefined ? '7.3' : options.release;
    if (release !== '7.3' && release !== '6.12') throw invalidArgValue('options.release', release, "must be '7.3' or '6.12'");
    this.release = release;
    /** an option only 7.3 (and 'mainline') has: refused on an older kernel, as its heaps do not exist there */
    const newer = (name: string, value: unknown) => {
      // false and [] describe an older kernel as well: only asking for the 7.3 heaps is refused
      const asks = value !== undefined && value !== false && !(Array.isArray(value) && value.length === 0);
      if (asks && (release !== '7.3' || profile !== 'mainline')) {
        throw invalidArgValue(`options.${name}`, value, `needs release '7.3' and profile 'mainline' (${profile} ${release} has no such heaps)`);
      }
    };

    const addon = loadAddon();
    const backing = options.backing === undefined ? (addon ? 'memfd' : 'js') : options.backing;
    if (backing !== 'memfd' && backing !== 'js') throw invalidArgValue('options.backing', backing, "must be 'memfd' or 'js'");
    if (backing === 'memfd' && !addon) throw addonMissing('memfd backing', addonStatus().reason);
    const builtins = validateBoolean(options.builtins, 'options.builtins', true);
    const cmaOptions = validateOptions(options.cma, ['size', 'regions'], 'options.cma');
    // each option read once: a getter cannot answer the check one thing and the use another
    const cmaSize = cmaOptions.size;
    const regions = cmaOptions.regions;
    const protectedHeaps = options.protectedHeaps;
    const memAccounting = options.memAccounting;
    newer('cma.regions', regions);
    newer('protectedHeaps', protectedHeaps);
    newer('memAccounting', memAccounting);
    this.memAccounting = validateBoolean(memAccounting, 'options.memAccounting', false);
    this.protectedHeaps = protectedHeapIds(protectedHeaps);
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
    if (regions !== undefined && !builtins) throw invalidArgValue('options.cma.regions', regions, 'needs builtins: the CMA heap registers the regions');
    if (this.protectedHeaps.length && !builtins) throw invalidArgValue('options.protectedHeaps', protectedHeaps, 'needs builtins: the TEE heap registers them');
    const regionSpecs = cmaRegionSpecs(regions, pageSize);

    this.credentials = credentials;
    this.defaultAccess = options.access === undefined ? 'allow' : options.access;
    validatePolicy(this.defaultAccess);
    this.registry = new HeapRegistry(profile);
    this.kernel = new SimulatedKernel(this, addon);

    if (builtins) {
      // dma_contiguous_reserve: the default CMA area exists before any driver's init runs
      const size = validateInteger(cmaSize === undefined ? DEFAULT_CMA_SIZE : cmaSize, 'options.cma.size', 0, Number.MAX_SAFE_INTEGER);
      const pages = Math.floor(size / pageSize);
      if (pages > 0) this.cma = new Cma('reserved', pages * pageSize, pageSize);
      // reserved-memory places the regions after the default area
      let base = this.cma ? this.cma.base + this.cma.size : 0x4000_0000;
      this.cmaRegions = regionSpecs.map((r) => {
        if (r.name === this.cma?.name) throw invalidArgValue('options.cma.regions', r.name, "names the default CMA area's heap");
        const area = new Cma(r.name, r.size, pageSize, base);
        base += r.size;
        return area;
      });
      for (const init of builtinInitcalls()) init(this);
    }
  }

  /**
   * What heap `name` is, from what user space would see of this kernel: its CMA areas' names,
   * tee_heap's `protected,` prefix (lib/heap-kind.ts, the same rule the real kernel's listing uses).
   *
   * @param name a heap's name
   * @returns 'system', 'contiguous', 'protected' or 'other'
   * @throws Nothing.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework({ cma: { regions: [{ name: 'video-memory', size: 16 << 20 }] } });
   * console.log(framework.heapKind('video-memory')); // 'contiguous'
   * ```
   */
  heapKind(name: string): HeapKind {
    return heapKind(name, new Set([...(this.cma ? [this.cma.name] : []), ...this.cmaRegions.map((c) => c.name)]));
  }

  /** @internal kind and accounting, as the real kernel's listing gives them */
  heapTraits(name: string): HeapTraits {
    return { kind: this.heapKind(name), accounted: heapAccounted(name, this.memAccounting) };
  }

  // ---- the exporter side (what a heap driver calls) ----

  /**
   * dma_heap_add: register a heap whose `ops.allocate` exports a dma-buf per allocation.
   *
   * @param info the heap's `name`, `ops` (`allocate`), `priv`, and `access` policy
   * @returns the registered heap (openHeap(name, { framework }) opens it)
   * @throws DmaHeapError `EINVAL` (syscall 'dma_heap_add') for no name, no allocate or a
   * name already registered; `EBUSY` when all 128 minors are taken.
   * @throws TypeError `ERR_INVALID_ARG_VALUE` for an access policy that is none.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * framework.addHeap({
   *   name: 'carveout',
   *   ops: {
   *     allocate(heap, len, fdFlags) {
   *       const backing = framework.allocBacking(Number(len), heap.name);
   *       return framework.exportBacking({ expName: heap.name, size: Number(len), flags: fdFlags, backing, priv: backing });
   *     },
   *   },
   * });
   * ```
   */
  addHeap(info: DmaHeapExportInfo): DmaHeap {
    return syscall('dma_heap_add', (ctx) => {
      if (typeof info?.name === 'string') ctx.heap = info.name;
      if (info?.access !== undefined) validatePolicy(info.access);
      return this.registry.add(info, nextIno());
    });
  }

  /**
   * dma_buf_export: a dma-buf holding one reference, which the framework hands to its first fd.
   * For an exporter with its own `ops`; exportBacking() is the short way over a backing.
   *
   * @param info `expName`, `size`, `flags` (the fd's), `ops` (mmap, release...), `priv`, and `backing`
   * @returns the kernel's dma-buf object, for a heap's `allocate` to return
   * @throws DmaHeapError (syscall 'dma_buf_export') `EINVAL` for a missing `priv` (null or
   * undefined, as the kernel refuses a NULL priv), `ops` without `release`, an empty `expName` or a
   * size that is no positive safe integer.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * const backing = framework.allocBacking(4096, 'mine');
   * const dmabuf = framework.dmaBufExport({
   *   expName: 'mine', size: 4096, flags: 0o2, priv: backing, backing,
   *   ops: { mmap: (b, vma) => backing.mmap(vma), release: () => backing.free() },
   * });
   * ```
   */
  dmaBufExport<P>(info: DmaBufExportInfo<P>): KernelDmaBuf<P> {
    return syscall('dma_buf_export', () => new KernelDmaBuf(info, this.reserve));
  }

  /**
   * Export `backing` as a dma-buf: its mmap maps the backing; its release frees the backing,
   * then runs `release` (the heap's own bookkeeping). If the export fails, the same happens
   * before the error leaves: the caller has nothing to undo.
   *
   * @param info `expName`, `size`, `flags` (the fd's: O_RDWR, O_CLOEXEC...), the `backing`, `priv`
   * (what the heap keeps with the buffer) and `release` (run after the backing is freed)
   * @returns the kernel's dma-buf object, for a heap's `allocate` to return
   * @throws DmaHeapError as dmaBufExport(), after freeing the backing and running `release`.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * const backing = framework.allocBacking(4096, 'mine');
   * const dmabuf = framework.exportBacking({ expName: 'mine', size: 4096, flags: 0o2, backing, priv: backing });
   * ```
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

  /**
   * Zeroed memory for a buffer: a memfd named `dma-heap:<name>`, or an ArrayBuffer.
   *
   * @param size bytes, a positive safe integer (a heap passes its page-aligned len)
   * @param name the exporter's name, in the memfd's name (another process reads it back)
   * @returns the backing, which the caller frees (exportBacking hands that to the buffer's release)
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / RangeError `ERR_OUT_OF_RANGE` for a bad size.
   * @throws DmaHeapError memfd_create's or ftruncate's errno (`ENOMEM`, `EMFILE`...) with memfd backing.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * const backing = framework.allocBacking(4096, 'carveout');
   * backing.free();
   * ```
   */
  allocBacking(size: number, name: string): BackingMemory {
    validateInteger(size, 'size', 1, Number.MAX_SAFE_INTEGER);
    return this.backing === 'memfd'
      ? new MemfdBacking(this.addon as Addon, size, `dma-heap:${name}`)
      : new JsBacking(size, this.reserve);
  }

  /**
   * The default access policy, for heaps without one of their own.
   *
   * @param policy 'allow', 'deny', `{ mode, uid?, gid? }` or `(ctx) => boolean`
   * @throws TypeError `ERR_INVALID_ARG_VALUE` for a policy that is none.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * framework.setAccess('deny'); // openHeap then fails with EACCES
   * ```
   */
  setAccess(policy: AccessPolicy): void;
  /**
   * The access policy of one heap.
   *
   * @param name a registered heap's name
   * @param policy 'allow', 'deny', `{ mode, uid?, gid? }`, `(ctx) => boolean`, or undefined for the default
   * @throws TypeError `ERR_INVALID_ARG_TYPE` for a non-string name; `ERR_INVALID_ARG_VALUE` for a
   * policy that is none; RangeError `ERR_OUT_OF_RANGE` for a name no heap is registered as.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * framework.setAccess('system', { mode: 0o600, uid: 0 }); // root only, as the real node
   * ```
   */
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

  /**
   * The heap registered as `name`, if any (its ops, access policy, minor).
   *
   * @param name the heap's name
   * @returns the heap, or undefined
   * @throws Nothing: any other value finds no heap.
   * @example
   * ```ts
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * console.log(framework.heap('system')?.path); // '/dev/dma_heap/system'
   * ```
   */
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
   *
   * @throws Nothing: a second dispose() does nothing.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * import { Framework } from 'dma-heap/framework';
   * const framework = new Framework();
   * const buf = openHeap('system', { framework }).alloc(4096);
   * framework.dispose(); // buf's fd and mapping are gone: afterEach in a test
   * ```
   */
  dispose(): void {
    this.kernel.dispose();
  }
}

/**
 * options.cma.regions, each read once: a node name (no '/', not empty, not `default_cma_region`),
 * each once, each size a positive whole number of pages.
 */
function cmaRegionSpecs(regions: unknown, pageSize: number): CmaRegion[] {
  if (regions === undefined) return [];
  validateArray(regions, 'options.cma.regions', 'an array of { name, size }');
  const out: CmaRegion[] = [];
  for (let i = 0; i < regions.length; i++) {
    const what = `options.cma.regions[${i}]`;
    const r = validateOptions(regions[i] as CmaRegion, ['name', 'size'], what);
    const name = r.name;
    // a node name is one path element: the heap's node under /dev/dma_heap
    if (typeof name !== 'string') throw invalidArgType(`${what}.name`, 'of type string', name);
    if (name === '' || name.includes('/') || name.includes('\0') || name === '.' || name === '..') throw invalidArgValue(`${what}.name`, name, 'is no device-tree node name');
    // a name another built-in heap has (add_cma_heaps would warn and skip it), or tee_heap's prefix
    if (name === CONTIGUOUS_HEAP_NAMES[0] || name === 'system' || out.some((c) => c.name === name)) throw invalidArgValue(`${what}.name`, name, 'names a heap twice');
    if (isProtectedHeapName(name)) throw invalidArgValue(`${what}.name`, name, "is tee_heap's name for protected memory, not a CMA region's");
    const size = validateInteger(r.size, `${what}.size`, pageSize, Number.MAX_SAFE_INTEGER);
    if (size % pageSize !== 0) throw outOfRange(`${what}.size`, `a multiple of the page size ${pageSize}`, size);
    out.push({ name, size });
  }
  return out;
}

/** options.protectedHeaps: known ids, each once (read once each) */
function protectedHeapIds(ids: unknown): ProtectedHeapId[] {
  if (ids === undefined) return [];
  validateArray(ids, 'options.protectedHeaps', 'an array of protected heap ids');
  const out: ProtectedHeapId[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as ProtectedHeapId;
    if (!PROTECTED_HEAP_IDS.includes(id)) throw invalidArgValue(`options.protectedHeaps[${i}]`, id, `must be one of ${PROTECTED_HEAP_IDS.join(', ')}`);
    if (out.includes(id)) throw invalidArgValue(`options.protectedHeaps[${i}]`, id, 'names a heap twice');
    out.push(id);
  }
  return out;
}
