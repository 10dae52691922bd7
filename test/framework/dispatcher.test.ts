import { constants } from 'node:os';
import fs from 'node:fs';
import os from 'node:os';
import { DmaHeapError } from '../../lib/errors';
import type { Framework } from '../../lib/framework';
import {
  decodeAllocationData,
  decodeU64,
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_GET_FEATURES,
  encodeAllocationData,
  encodeU64,
  IO,
  IOR,
  IOW,
  IOWR,
  O_ACCMODE,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  U64_MAX,
} from '../../lib/uapi';
import { checkNoFdLeaks, eachBacking, openFds, thrown } from './helpers';

checkNoFdLeaks();

const TCGETS = 0x5401;

interface Case {
  name: string;
  cmd: number;
  /** the user memory (null: a NULL pointer); default a 24-byte struct with len 1 page */
  arg?: (page: number) => Uint8Array | null;
  /** an errno, 'fd' (allocates and reports the fd), or 'unreported' (allocates, reports nothing) */
  expect: string;
  /** bytes the arg must hold afterwards (besides the fd field) */
  after?: (arg: Uint8Array, before: Uint8Array) => void;
}

const struct = (len: bigint, extra: Partial<{ fd: number; fdFlags: number; heapFlags: bigint }> = {}, size = 24) =>
  encodeAllocationData(
    { len, fd: extra.fd ?? 0, fdFlags: extra.fdFlags ?? O_RDWR | O_CLOEXEC, heapFlags: extra.heapFlags ?? 0n },
    new Uint8Array(size),
  );

const mainline: Case[] = [
  { name: 'ALLOC 0xC0184800', cmd: 0xc0184800, expect: 'fd' },
  { name: 'nr 1 (the v14 ALLOC number)', cmd: IOWR('H', 1, 24), expect: 'EINVAL' },
  { name: 'nr 2', cmd: IOWR('H', 2, 24), expect: 'EINVAL' },
  { name: 'nr 255', cmd: IOWR('H', 255, 24), expect: 'EINVAL' },
  {
    name: '_IOR: nothing copied in, so len 0: EINVAL, and a failed ALLOC copies nothing back (6.12)',
    cmd: IOR('H', 0, 24),
    arg: () => new Uint8Array(24).fill(0xff),
    expect: 'EINVAL',
    after: (arg) => expect([...arg]).toEqual(Array(24).fill(0xff)),
  },
  {
    name: '_IOW: allocates, nothing copied back',
    cmd: IOW('H', 0, 24),
    expect: 'unreported',
    after: (arg, before) => expect(arg).toEqual(before),
  },
  { name: '_IO', cmd: IO('H', 0), expect: 'EINVAL' },
  { name: 'TCGETS 0x5401', cmd: TCGETS, expect: 'EINVAL' },
  { name: "magic 'Z' is never checked", cmd: IOWR('Z', 0, 24), expect: 'fd' },
  { name: 'magic 0', cmd: IOWR(0, 0, 24), expect: 'fd' },
  {
    name: 'older 16-byte struct 0xC0104800 allocates (heap_flags zero-filled)',
    cmd: 0xc0104800,
    arg: (p) => struct(BigInt(p), {}, 16),
    expect: 'fd',
  },
  {
    name: 'newer 48-byte struct 0xC0304800 allocates, its tail comes back unchanged',
    cmd: 0xc0304800,
    arg: (p) => {
      const a = struct(BigInt(p), {}, 48);
      a.fill(0xa5, 24);
      return a;
    },
    expect: 'fd',
    after: (arg, before) => expect([...arg.subarray(12)]).toEqual([...before.subarray(12)]),
  },
  {
    name: 'a failed ALLOC still copies back (48 bytes, heap_flags set: EINVAL, bytes unchanged)',
    cmd: 0xc0304800,
    arg: () => {
      const a = struct(4096n, { heapFlags: 1n }, 48);
      a.fill(0x5a, 24);
      return a;
    },
    expect: 'EINVAL',
    after: (arg, before) => expect(arg).toEqual(before),
  },
  { name: 'len 1 → one page', cmd: DMA_HEAP_IOCTL_ALLOC, arg: () => struct(1n), expect: 'fd' },
  { name: 'len 0', cmd: DMA_HEAP_IOCTL_ALLOC, arg: () => struct(0n), expect: 'EINVAL' },
  { name: 'len 2^64-1 (PAGE_ALIGN wraps to 0)', cmd: DMA_HEAP_IOCTL_ALLOC, arg: () => struct(U64_MAX), expect: 'EINVAL' },
  {
    name: 'len 2^64-page+1 (overflow)',
    cmd: DMA_HEAP_IOCTL_ALLOC,
    arg: (p) => struct(U64_MAX - BigInt(p) + 2n),
    expect: 'EINVAL',
  },
  {
    name: 'len 2^64-page (aligned, huge): the system heap refuses more than RAM',
    cmd: DMA_HEAP_IOCTL_ALLOC,
    arg: (p) => struct(U64_MAX - BigInt(p) + 1n),
    expect: 'ENOMEM',
  },
  { name: 'fd_flags O_RDONLY allocates', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { fdFlags: O_RDONLY }), expect: 'fd' },
  { name: 'fd_flags O_ACCMODE allocates', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { fdFlags: O_ACCMODE }), expect: 'fd' },
  { name: 'fd_flags unknown bit 0x100', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { fdFlags: 0x100 }), expect: 'EINVAL' },
  { name: 'fd_flags O_NONBLOCK', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { fdFlags: 0o4000 }), expect: 'EINVAL' },
  { name: 'heap_flags 1', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { heapFlags: 1n }), expect: 'EINVAL' },
  { name: 'heap_flags 1<<63', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { heapFlags: 1n << 63n }), expect: 'EINVAL' },
  { name: 'fd != 0 on input', cmd: DMA_HEAP_IOCTL_ALLOC, arg: (p) => struct(BigInt(p), { fd: 3 }), expect: 'EINVAL' },
  {
    // The addon hands the kernel a zeroed scratch: a short struct reads as zero-extended.
    name: 'an argument shorter than the struct reads as zero-extended: len 1, the rest 0, allocates',
    cmd: DMA_HEAP_IOCTL_ALLOC,
    arg: () => new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]),
    expect: 'unreported',
    after: (arg) => expect([...arg]).toEqual([1, 0, 0, 0, 0, 0, 0, 0]),
  },
  { name: 'a NULL pointer with IN: copy_from_user faults', cmd: DMA_HEAP_IOCTL_ALLOC, arg: () => null, expect: 'EFAULT' },
  {
    name: 'a NULL pointer with only OUT: the failed ALLOC returns first, so EINVAL, not EFAULT (measured on 6.12)',
    cmd: IOR('H', 0, 24),
    arg: () => null,
    expect: 'EINVAL',
  },
  { name: 'v14 GET_FEATURES on mainline: decodes as ALLOC with len 0', cmd: DMA_HEAP_V14_IOCTL_GET_FEATURES, arg: () => new Uint8Array(8), expect: 'EINVAL' },
  { name: 'v14 ALLOC on mainline', cmd: DMA_HEAP_V14_IOCTL_ALLOC, expect: 'EINVAL' },
];

const v14: Case[] = [
  {
    name: 'GET_FEATURES 0x80084800 returns 0 in the u64',
    cmd: DMA_HEAP_V14_IOCTL_GET_FEATURES,
    arg: () => new Uint8Array(8).fill(0xff),
    expect: 'ok',
    after: (arg) => expect(decodeU64(arg)).toBe(0n),
  },
  {
    // the handler's "non-zero input → EINVAL" never sees input: kcmd is _IOR, in_size is 0
    name: 'GET_FEATURES as _IOWR with a non-zero field still returns 0',
    cmd: IOWR('H', 0, 8),
    arg: () => encodeU64(0xdeadn),
    expect: 'ok',
    after: (arg) => expect(decodeU64(arg)).toBe(0n),
  },
  { name: 'ALLOC 0xC0184801', cmd: DMA_HEAP_V14_IOCTL_ALLOC, expect: 'fd' },
  {
    name: "mainline ALLOC on v14 is GET_FEATURES: 0, with the whole struct zeroed (fd 0!)",
    cmd: DMA_HEAP_IOCTL_ALLOC,
    expect: 'ok',
    after: (arg) => expect([...arg]).toEqual(Array(24).fill(0)),
  },
  { name: 'nr 2', cmd: IOWR('H', 2, 24), expect: 'EINVAL' },
  { name: 'ALLOC len 0', cmd: DMA_HEAP_V14_IOCTL_ALLOC, arg: () => struct(0n), expect: 'EINVAL' },
  { name: 'ALLOC fd != 0', cmd: DMA_HEAP_V14_IOCTL_ALLOC, arg: () => struct(1n, { fd: 1 }), expect: 'EINVAL' },
];

function run(fw: Framework, c: Case): void {
  const heapFd = fw.kernel.openHeap('system');
  const arg = c.arg ? c.arg(fw.pageSize) : struct(BigInt(fw.pageSize));
  const before = Uint8Array.from(arg ?? []);
  const fds = fw.kernel.fds().length;
  const real = openFds().size;
  try {
    if (c.expect === 'fd' || c.expect === 'ok' || c.expect === 'unreported') {
      expect(fw.kernel.ioctl(heapFd, c.cmd, arg)).toBe(0);
    } else {
      const e = thrown(() => fw.kernel.ioctl(heapFd, c.cmd, arg));
      expect(e).toBeInstanceOf(DmaHeapError);
      expect(e).toMatchObject({
        code: c.expect,
        errno: -(constants.errno as Record<string, number>)[c.expect],
        syscall: 'ioctl',
        heap: 'system',
        path: '/dev/dma_heap/system',
      });
    }
    if (arg) c.after?.(arg, before);
    if (c.expect === 'fd') {
      const { fd } = decodeAllocationData(arg!);
      expect(fw.kernel.isDmaBuf(fd)).toBe(true);
      expect(fw.kernel.seekEnd(fd)).toBe(fw.pageSize);
      expect(fw.kernel.fds().length).toBe(fds + 1);
      fw.kernel.close(fd);
    } else if (c.expect === 'unreported') {
      // the fd exists (a leak, as on the real kernel) but nobody was told its number
      const [leaked] = fw.kernel.fds().filter((fd) => fd !== heapFd);
      expect(fw.kernel.fds().length).toBe(fds + 1);
      expect(openFds().size).toBe(real + 1);
      expect(fw.kernel.isDmaBuf(leaked)).toBe(true);
      fw.kernel.close(leaked);
    } else {
      expect(fw.kernel.fds().length).toBe(fds);
    }
  } finally {
    fw.kernel.close(heapFd);
  }
}

eachBacking((make) => {
  describe('mainline dma_heap_ioctl', () => {
    test.each(mainline)('$name → $expect', (c) => run(make(), c));
  });

  describe('v14 dma_heap_ioctl', () => {
    test.each(v14)('$name → $expect', (c) => run(make({ profile: 'v14' }), c));
  });

  test('the fd comes back in the struct; the rest of it is unchanged', () => {
    const fw = make();
    const heapFd = fw.kernel.openHeap('system');
    const arg = struct(3n, { fdFlags: O_RDONLY });
    fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg);
    const out = decodeAllocationData(arg);
    expect(out).toMatchObject({ len: 3n, fdFlags: O_RDONLY, heapFlags: 0n });
    expect(out.fd).toBeGreaterThan(2);
    fw.kernel.close(out.fd);
    fw.kernel.close(heapFd);
  });

  test('a NULL argument (null) faults when anything is copied in; _IO copies nothing and fails EINVAL', () => {
    const fw = make();
    const heapFd = fw.kernel.openHeap('system');
    expect(thrown(() => fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, null)).code).toBe('EFAULT');
    expect(thrown(() => fw.kernel.ioctl(heapFd, IO('H', 0), null)).code).toBe('EINVAL');
    const fd = decodeAllocationData((() => {
      const arg = struct(1n);
      fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg);
      return arg;
    })()).fd;
    expect(thrown(() => fw.kernel.ioctl(fd, 0x40086200, null)).code).toBe('EFAULT');
    expect(thrown(() => fw.kernel.ioctl(fd, 0x40086201, null)).code).toBe('EFAULT');
    fw.kernel.close(fd);
    fw.kernel.close(heapFd);
  });

  test('ioctl on an fd the framework does not know is EBADF; on a dma-buf, heap cmds are ENOTTY', () => {
    const fw = make();
    const foreign = fs.openSync(os.devNull, 'r');
    try {
      expect(thrown(() => fw.kernel.ioctl(foreign, DMA_HEAP_IOCTL_ALLOC, struct(1n)))).toMatchObject({
        code: 'EBADF',
        syscall: 'ioctl',
      });
    } finally {
      fs.closeSync(foreign);
    }
    const heapFd = fw.kernel.openHeap('system');
    const arg = struct(1n);
    fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg);
    const { fd } = decodeAllocationData(arg);
    expect(thrown(() => fw.kernel.ioctl(fd, DMA_HEAP_IOCTL_ALLOC, struct(1n))).code).toBe('ENOTTY');
    expect(thrown(() => fw.kernel.ioctl(fd, TCGETS, new Uint8Array(64))).code).toBe('ENOTTY');
    fw.kernel.close(fd);
    expect(thrown(() => fw.kernel.ioctl(fd, DMA_HEAP_IOCTL_ALLOC, struct(1n))).code).toBe('EBADF');
    fw.kernel.close(heapFd);
  });

  test('ioctlAsync runs on a later tick, never synchronously, and fails the same way', async () => {
    const fw = make();
    const heapFd = fw.kernel.openHeap('system');
    const arg = struct(1n);
    let settled = false;
    const p = fw.kernel.ioctlAsync(heapFd, DMA_HEAP_IOCTL_ALLOC, arg).then((r) => {
      settled = true;
      return r;
    });
    expect(decodeAllocationData(arg).fd).toBe(0); // not run yet
    await Promise.resolve();
    expect(settled).toBe(false);
    expect(await p).toBe(0);
    const { fd } = decodeAllocationData(arg);
    expect(fw.kernel.isDmaBuf(fd)).toBe(true);
    fw.kernel.close(fd);
    await expect(fw.kernel.ioctlAsync(heapFd, IOWR('H', 1, 24), struct(1n))).rejects.toMatchObject({
      code: 'EINVAL',
      syscall: 'ioctl',
    });
    fw.kernel.close(heapFd);
  });

  test('the CMA heaps share the dispatcher', () => {
    const fw = make();
    for (const name of ['default_cma_region', 'reserved']) {
      const heapFd = fw.kernel.openHeap(name);
      const arg = struct(1n);
      fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg);
      fw.kernel.close(decodeAllocationData(arg).fd);
      expect(thrown(() => fw.kernel.ioctl(heapFd, TCGETS, arg))).toMatchObject({ code: 'EINVAL', heap: name });
      fw.kernel.close(heapFd);
    }
  });
});
