/**
 * The addon on this host, with memfds standing in for dma-bufs (mappable fds
 * that need no driver). Kernel-only behaviour is covered by the conformance suite.
 *
 * Errors the addon throws come from Node's main realm, not jest's test realm:
 * match them by name/code, never with instanceof (toThrow(TypeError)).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Addon } from '../lib/native/addon';
import { addonStatus, loadAddon } from '../lib/native/load';
import { NativeKernel, devNumbers } from '../lib/native/kernel';
import * as uapi from '../lib/uapi';

const disabled = process.env.DMA_HEAP_ADDON === '0' || process.platform !== 'linux';
const addon = disabled ? null : loadAddon();
const A = addon as Addon;
const page = addon ? A.pageSize() : 4096;

const FIONREAD = 0x541b; // legacy number: encodes no size, yet the kernel writes an int
const SEEK_END = 2;
const O_CLOEXEC_OCTAL = 0o2000000;

// ---- helpers ----

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const mapsOf = (name: string) =>
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name} `)).length;
const fdFlags = (fd: number) => parseInt(/^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);
const isOpen = (fd: number) => fs.existsSync(`/proc/self/fd/${fd}`);

function thrown(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('did not throw');
}

let serial = 0;
/** a memfd of `size` bytes, named uniquely so /proc/self/maps can be counted */
function memfd(size: number): { fd: number; name: string } {
  const name = `dmaheap-test-${process.pid}-${++serial}`;
  const fd = A.memfdCreate(name, uapi.MFD_CLOEXEC | uapi.MFD_ALLOW_SEALING);
  A.ftruncate(fd, size);
  return { fd, name };
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g();
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** GC until cond() holds (finalizers run from a later immediate), or give up */
async function gcUntil(cond: () => boolean, rounds = 20): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    gc();
    await tick();
    await tick();
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

function addonFile(): string {
  if (process.env.DMA_HEAP_ADDON_PATH) return path.resolve(process.env.DMA_HEAP_ADDON_PATH);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('node-gyp-build') as { path(dir: string): string }).path(path.join(__dirname, '..'));
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-addon-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

if (!disabled) {
  test('the addon loads, and says which file it is', () => {
    expect(addonStatus()).toEqual({ loaded: true, file: expect.stringMatching(/\.node$/) });
    expect(require.cache[addonStatus().file!]).toBeDefined();
  });
}

const suite = addon ? describe : describe.skip;

suite('addon', () => {
  let fdsAtStart = 0;
  beforeAll(() => {
    fdsAtStart = fdCount();
  });

  describe('(a) abi', () => {
    test('numbers are the C compiler’s and equal lib/uapi.ts', () => {
      expect(A.abi).toMatchObject({
        DMA_HEAP_IOCTL_ALLOC: 0xc0184800,
        DMA_HEAP_V14_IOCTL_GET_FEATURES: 0x80084800,
        DMA_HEAP_V14_IOCTL_ALLOC: 0xc0184801,
        DMA_BUF_IOCTL_SYNC: 0x40086200,
        DMA_BUF_SET_NAME_A: 0x40046201,
        DMA_BUF_SET_NAME_B: 0x40086201,
        UDMABUF_CREATE: 0x40187542,
        ALLOCATION_DATA_SIZE: 24,
        UDMABUF_CREATE_SIZE: 24,
      });
      expect(A.abi).toMatchObject({
        DMA_HEAP_IOCTL_ALLOC: uapi.DMA_HEAP_IOCTL_ALLOC,
        DMA_HEAP_V14_IOCTL_GET_FEATURES: uapi.DMA_HEAP_V14_IOCTL_GET_FEATURES,
        DMA_HEAP_V14_IOCTL_ALLOC: uapi.DMA_HEAP_V14_IOCTL_ALLOC,
        DMA_BUF_IOCTL_SYNC: uapi.DMA_BUF_IOCTL_SYNC,
        DMA_BUF_SET_NAME_A: uapi.DMA_BUF_SET_NAME_A,
        DMA_BUF_SET_NAME_B: uapi.DMA_BUF_SET_NAME_B,
        UDMABUF_CREATE: uapi.UDMABUF_CREATE,
        ALLOCATION_DATA_SIZE: uapi.ALLOCATION_DATA_SIZE,
        UDMABUF_CREATE_SIZE: uapi.UDMABUF_CREATE_SIZE,
        DMA_HEAP_VALID_FD_FLAGS: uapi.DMA_HEAP_VALID_FD_FLAGS,
        O_CLOEXEC: uapi.O_CLOEXEC,
        O_RDONLY: uapi.O_RDONLY,
        O_RDWR: uapi.O_RDWR,
        O_NOFOLLOW: uapi.O_NOFOLLOW,
        SOCK_STREAM: uapi.SOCK_STREAM,
        SOCK_SEQPACKET: uapi.SOCK_SEQPACKET,
      });
      expect(Object.isFrozen(A.abi)).toBe(true);
    });

    test('page size is the system’s, a power of two', () => {
      expect(page).toBeGreaterThanOrEqual(4096);
      expect(page & (page - 1)).toBe(0);
    });
  });

  describe('(b) errors', () => {
    test('close(-1): EBADF, errno -9, syscall close, Node’s message shape', () => {
      expect(thrown(() => A.close(-1))).toMatchObject({
        code: 'EBADF',
        errno: -os.constants.errno.EBADF,
        syscall: 'close',
        message: 'EBADF: bad file descriptor, close',
      });
      expect(os.constants.errno.EBADF).toBe(9);
    });

    test('closing a closed fd: EBADF', () => {
      const { fd } = memfd(0);
      A.close(fd);
      expect(thrown(() => A.close(fd))).toMatchObject({ code: 'EBADF', errno: -9, syscall: 'close' });
    });

    test('open of a missing path: ENOENT with syscall open and the path', () => {
      const p = path.join(tmp, 'missing');
      expect(thrown(() => A.open(p, A.abi.O_RDONLY | A.abi.O_CLOEXEC))).toMatchObject({
        code: 'ENOENT',
        errno: -os.constants.errno.ENOENT,
        syscall: 'open',
        path: p,
      });
    });

    test('non-integers where memory safety needs integers: ERR_OUT_OF_RANGE (as Node says for fs.closeSync(1.5)); non-numbers: TypeError', () => {
      const { fd } = memfd(page);
      expect(thrown(() => A.close(1.5))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(thrown(() => A.close('3' as never))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(thrown(() => A.mmap(fd, -1, 0, true))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(thrown(() => A.mmap(fd, page, 0.5, true))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(thrown(() => A.readMapped(fd, 0, [1, 2] as unknown as Uint8Array))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => A.ioctl(fd, FIONREAD, new Uint16Array(2) as unknown as Uint8Array))).toMatchObject({
        name: 'TypeError',
      });
      A.close(fd);
    });
  });

  describe('(c) mmap', () => {
    test('write through one mapping, read through another (MAP_SHARED)', () => {
      const { fd, name } = memfd(2 * page);
      const a = new Uint8Array(A.mmap(fd, 2 * page, 0, true));
      const b = new Uint8Array(A.mmap(fd, 2 * page, 0, true));
      expect(mapsOf(name)).toBe(2);
      a[0] = 0x11;
      a[2 * page - 1] = 0x22;
      expect(b[0]).toBe(0x11);
      expect(b[2 * page - 1]).toBe(0x22);
      A.munmap(a.buffer as ArrayBuffer);
      A.munmap(b.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0);
      A.close(fd);
    });

    test('a mapping at a page offset sees that page', () => {
      const { fd } = memfd(3 * page);
      A.writeMapped(fd, 2 * page, new Uint8Array(page).fill(3));
      const tail = new Uint8Array(A.mmap(fd, page, 2 * page, true));
      expect(tail.length).toBe(page);
      expect(tail[0]).toBe(3);
      expect(tail[page - 1]).toBe(3);
      A.munmap(tail.buffer as ArrayBuffer);
      A.close(fd);
    });

    test('a mapping stays valid after its fd is closed', () => {
      const { fd, name } = memfd(page);
      const view = new Uint8Array(A.mmap(fd, page, 0, true));
      A.close(fd);
      view[7] = 0x77;
      expect(view[7]).toBe(0x77);
      expect(mapsOf(name)).toBe(1);
      A.munmap(view.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0);
    });

    test('bad ranges fail with EINVAL (never a SIGBUS past the end of a memfd)', () => {
      const { fd, name } = memfd(page + 1); // the partial last page is mappable
      A.munmap(A.mmap(fd, 2 * page, 0, true));
      expect(thrown(() => A.mmap(fd, 3 * page, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(fd, page, 2 * page, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(fd, page, 1, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(fd, 0, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(-1, page, 0, true))).toMatchObject({ code: 'EBADF', syscall: 'mmap' });
      expect(mapsOf(name)).toBe(0);
      A.close(fd);
    });

    test('a read-only fd: EACCES for a writable mapping; a read-only one is never an ArrayBuffer', () => {
      const { fd, name } = memfd(page);
      A.writeMapped(fd, 0, new Uint8Array([7]));
      const ro = A.open(`/proc/self/fd/${fd}`, A.abi.O_RDONLY | A.abi.O_CLOEXEC);
      expect(thrown(() => A.mmap(ro, page, 0, true))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
      // V8 has no read-only ArrayBuffer: a JS write to PROT_READ pages would kill the process.
      expect(thrown(() => A.mmap(ro, page, 0, false))).toMatchObject({ name: 'TypeError', code: 'ERR_DMA_HEAP_READ_ONLY_MAPPING' });
      expect(mapsOf(name)).toBe(0);
      const back = new Uint8Array(1);
      A.readMapped(ro, 0, back);
      expect(back[0]).toBe(7);
      A.close(ro);
      A.close(fd);
    });

    test('fd ownership is per process: a number another thread closed and reused survives the first owner’s exit', async () => {
      const { Worker } = await import('node:worker_threads');
      // The very file this thread loaded: another build would keep its own ownership table.
      const file = addonStatus().file!;
      const worker = new Worker(
        `const a = require(${JSON.stringify(file)}); require('worker_threads').parentPort.postMessage(a.memfdCreate('worker-made', 1)); setInterval(() => {}, 1000);`,
        { eval: true },
      );
      const fd: number = await new Promise((resolve) => worker.once('message', resolve));
      A.close(fd); // this thread frees the worker's number...
      const mine = A.memfdCreate('main-made', 1); // ...and the kernel hands it out again
      expect(mine).toBe(fd);
      await worker.terminate();
      expect(fs.readlinkSync(`/proc/self/fd/${mine}`)).toMatch(/main-made/);
      A.close(mine);
    });
  });

  describe('(d) munmap', () => {
    test('detaches every view: length 0, throwing accessors throw TypeError; twice is a no-op', () => {
      const { fd, name } = memfd(page);
      const buffer = A.mmap(fd, page, 0, true);
      const view = new Uint8Array(buffer);
      const sub = view.subarray(16, 32);
      const dv = new DataView(buffer);
      view.fill(5);
      A.munmap(buffer);
      expect(mapsOf(name)).toBe(0);
      expect(buffer.byteLength).toBe(0);
      expect(view.length).toBe(0);
      expect(sub.length).toBe(0);
      expect(view[0]).toBeUndefined(); // element access on a detached view reads nothing
      expect(thrown(() => view.fill(1))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => view.set([1]))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => dv.getUint8(0))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => new Uint8Array(buffer, 0, 1))).toMatchObject({ name: 'TypeError' });
      A.munmap(buffer); // no-op
      A.close(fd);
    });

    test('anything but an mmap() ArrayBuffer is a TypeError', () => {
      const { fd } = memfd(page);
      const view = new Uint8Array(A.mmap(fd, page, 0, true));
      expect(thrown(() => A.munmap(new ArrayBuffer(8)))).toMatchObject({ name: 'TypeError' });
      const detached = new ArrayBuffer(8);
      structuredClone(detached, { transfer: [detached] });
      expect(thrown(() => A.munmap(detached))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => A.munmap(view as unknown as ArrayBuffer))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => A.munmap(Buffer.alloc(8).buffer as ArrayBuffer))).toMatchObject({ name: 'TypeError' });
      expect(view.length).toBe(page);
      A.munmap(view.buffer as ArrayBuffer);
      A.close(fd);
    });
  });

  describe('(e) garbage collection', () => {
    test('a forgotten mapping is unmapped by GC', async () => {
      const { fd, name } = memfd(page);
      (() => {
        new Uint8Array(A.mmap(fd, page, 0, true)).fill(9);
      })();
      expect(mapsOf(name)).toBe(1);
      expect(await gcUntil(() => mapsOf(name) === 0)).toBe(true);
      A.close(fd);
    });

    test('exactly once: a late finalizer never unmaps a newer mapping at the same address', async () => {
      const { fd, name } = memfd(page);
      let keep: Uint8Array | undefined;
      (() => {
        const old = A.mmap(fd, page, 0, true);
        A.munmap(old); // its finalizer is still to come
        keep = new Uint8Array(A.mmap(fd, page, 0, true)); // likely the very same address
      })();
      keep![0] = 1;
      await gcUntil(() => false, 5);
      expect(mapsOf(name)).toBe(1);
      keep![1] = 2; // would SIGSEGV had the old finalizer unmapped it
      expect(keep![0] + keep![1]).toBe(3);
      A.munmap(keep!.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0);
      A.close(fd);
    });

    test('mapped bytes count as external memory (GC pressure) until unmapped', () => {
      const size = 16 << 20;
      const { fd } = memfd(size);
      const before = process.memoryUsage().external;
      const buffer = A.mmap(fd, size, 0, true);
      const mapped = process.memoryUsage().external;
      expect(mapped - before).toBeGreaterThanOrEqual(size);
      A.munmap(buffer);
      expect(process.memoryUsage().external - before).toBeLessThan(size / 2);
      A.close(fd);
    });
  });

  describe('(f) worker_threads', () => {
    // The worker opens every kind of fd the addon makes, maps memory (kept, forgotten,
    // unmapped), polls, then goes away without cleaning up. One fd it disowns: that
    // one must survive it.
    const workerCode = (file: string) => `
      const a = require(${JSON.stringify(file)});
      const fs = require('fs');
      const { parentPort, workerData } = require('worker_threads');
      const fd = a.memfdCreate(workerData.name, 1);
      a.ftruncate(fd, 16 * 4096);
      globalThis.keep = [a.mmap(fd, 16 * 4096, 0, true), a.mmap(fd, 4096, 4096, true)];
      a.mmap(fd, 4096, 0, true); // forgotten
      a.munmap(a.mmap(fd, 4096, 0, true));
      const [s1, s2] = a.socketpair(a.abi.SOCK_SEQPACKET);
      a.sendFds(s1, new Uint8Array([1]), [fd, fd]);
      a.recvFds(s2, 16, 4);
      a.dup(fd, true);
      a.open('/dev/null', a.abi.O_RDONLY | a.abi.O_CLOEXEC);
      a.own(fs.openSync('/dev/null', 'r'));
      const kept = a.dup(fd, true);
      a.disown(kept);
      const p1 = a.poll(s1, 1, () => {});
      const p2 = a.poll(s2, 2, () => {});
      parentPort.once('message', () => {
        if (workerData.mode === 'exit') process.exit(0);
        if (workerData.mode === 'return') { p1.stop(); p2.stop(); } // then nothing keeps it alive
      });
      parentPort.postMessage(kept);
    `;

    test.each(['terminate', 'exit', 'return'])('a worker that ends by %s leaves no fds and no mappings', async (mode) => {
      const name = `dmaheap-worker-${process.pid}-${mode}`;
      const before = fdCount();
      const worker = new Worker(workerCode(addonFile()), { eval: true, workerData: { mode, name } });
      const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
      const kept = await new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      try {
        expect(mapsOf(name)).toBeGreaterThanOrEqual(2); // kept (+ forgotten, until a GC)
        if (mode === 'terminate') await worker.terminate();
        else worker.postMessage('go');
        await exited;
        expect(mapsOf(name)).toBe(0);
        expect(isOpen(kept)).toBe(true); // disowned: not the worker's to close
        expect(fs.readlinkSync(`/proc/self/fd/${kept}`)).toContain(`memfd:${name}`);
      } finally {
        await worker.terminate();
        if (isOpen(kept)) fs.closeSync(kept);
      }
      expect(fdCount()).toBe(before);
    });

    test('terminating workers mid-callback never aborts (JS refused while a poll fires, an ioctl settles)', async () => {
      // Regression: node-addon-api made an Error for the refused call and aborted the process.
      const code = `
        const a = require(${JSON.stringify(addonFile())});
        const [x, y] = a.socketpair(a.abi.SOCK_STREAM);
        a.poll(x, 2, () => {}); // writable: fires on every loop turn
        const again = () => a.ioctlAsync(y, ${FIONREAD}, new Uint8Array(4)).then(again);
        again();
        require('worker_threads').parentPort.postMessage('up');
      `;
      const before = fdCount();
      // qemu TCG (the VM rows, and qemu-user in test/prebuilds/check.js) is ~20x slower
      const rounds = process.env.DMA_HEAP_TEST_KERNEL || process.env.DMA_HEAP_TEST_EMULATED ? 10 : 60;
      for (let i = 0; i < rounds; i++) {
        const worker = new Worker(code, { eval: true });
        await new Promise((r) => worker.once('message', r));
        if (i % 2) await tick();
        await worker.terminate();
      }
      expect(fdCount()).toBe(before);
    });

    test('several workers at once, each with its own state', async () => {
      const before = fdCount();
      const names = [1, 2, 3].map((i) => `dmaheap-many-${process.pid}-${i}`);
      const workers = names.map((name) => new Worker(workerCode(addonFile()), { eval: true, workerData: { mode: 'terminate', name } }));
      const kept = await Promise.all(workers.map((w) => new Promise<number>((r) => w.once('message', r))));
      await Promise.all(workers.map((w) => w.terminate()));
      for (const name of names) expect(mapsOf(name)).toBe(0);
      for (const fd of kept) fs.closeSync(fd);
      expect(fdCount()).toBe(before);
    });
  });

  describe('(g) ioctl', () => {
    test('a too-short arg: the kernel writes into scratch, only arg.length bytes come back', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      A.sendFds(a, new Uint8Array(258), []);
      const backing = new Uint8Array(8).fill(0xaa);
      const arg = backing.subarray(2, 3); // 1 byte; FIONREAD writes 4
      expect(A.ioctl(b, FIONREAD, arg)).toBe(0);
      expect([...backing]).toEqual([0xaa, 0xaa, 0x02, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
      backing.fill(0xaa);
      expect(await A.ioctlAsync(b, FIONREAD, arg)).toBe(0);
      expect([...backing]).toEqual([0xaa, 0xaa, 0x02, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
      const full = new Uint8Array(4);
      A.ioctl(b, FIONREAD, full);
      expect(new DataView(full.buffer).getInt32(0, true)).toBe(258);
      A.close(a);
      A.close(b);
    });

    test('a null arg passes NULL: EFAULT', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      expect(thrown(() => A.ioctl(a, FIONREAD, null))).toMatchObject({ code: 'EFAULT', syscall: 'ioctl' });
      A.close(a);
      A.close(b);
    });

    test('the dma-heap ALLOC number on a memfd: ENOTTY, arg untouched; async rejects alike', async () => {
      const { fd } = memfd(page);
      const arg = uapi.encodeAllocationData({ len: 4096n, fd: 0, fdFlags: uapi.O_RDWR | uapi.O_CLOEXEC, heapFlags: 0n });
      const copy = Uint8Array.from(arg);
      const expected = { code: 'ENOTTY', errno: -os.constants.errno.ENOTTY, syscall: 'ioctl' };
      expect(thrown(() => A.ioctl(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, arg))).toMatchObject(expected);
      expect(thrown(() => A.ioctl(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, arg.subarray(0, 1)))).toMatchObject(expected);
      expect(thrown(() => A.ioctl(fd, A.abi.DMA_HEAP_IOCTL_ALLOC | 0, arg))).toMatchObject(expected); // signed form
      await expect(A.ioctlAsync(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, arg)).rejects.toMatchObject(expected);
      expect(arg).toEqual(copy);
      A.close(fd);
    });

    test('ioctlAsync settles later, off the event loop, and survives its arg being detached', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      A.sendFds(a, new Uint8Array(3), []);
      let settled = false;
      const p = A.ioctlAsync(b, FIONREAD, new Uint8Array(4)).then((r) => {
        settled = true;
        return r;
      });
      await Promise.resolve();
      expect(settled).toBe(false);
      expect(await p).toBe(0);

      const { fd } = memfd(page);
      const buffer = A.mmap(fd, page, 0, true);
      const arg = new Uint8Array(buffer, 0, 4);
      const pending = A.ioctlAsync(b, FIONREAD, arg);
      A.munmap(buffer); // the copy-back must notice, not write into unmapped memory
      expect(await pending).toBe(0);
      expect(arg.length).toBe(0);
      A.close(fd);
      A.close(a);
      A.close(b);
    });
  });

  describe('(h) readMapped / writeMapped', () => {
    test('round trip at an unaligned offset, seen by a mapping too', () => {
      const { fd, name } = memfd(3 * page);
      const data = Uint8Array.from({ length: page + 100 }, (_, i) => i & 0xff);
      A.writeMapped(fd, page - 50, data);
      const back = new Uint8Array(data.length);
      A.readMapped(fd, page - 50, back);
      expect(back).toEqual(data);
      const view = new Uint8Array(A.mmap(fd, 3 * page, 0, true));
      expect(view.subarray(page - 50, page - 50 + data.length)).toEqual(data);
      A.munmap(view.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0); // the transient mappings are gone
      A.close(fd);
    });

    test('empty is a no-op; past the end EINVAL; read-only fd EACCES on write', () => {
      const { fd } = memfd(page);
      A.readMapped(-1, 0, new Uint8Array(0));
      expect(thrown(() => A.readMapped(fd, page, new Uint8Array(page + 1)))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.writeMapped(fd, 2 * page, new Uint8Array(1)))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      const ro = A.open(`/proc/self/fd/${fd}`, A.abi.O_RDONLY | A.abi.O_CLOEXEC);
      expect(thrown(() => A.writeMapped(ro, 0, new Uint8Array(1)))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
      A.readMapped(ro, 0, new Uint8Array(1));
      A.close(ro);
      A.close(fd);
    });

    test('lseek(SEEK_END) is the size; dup honours cloexec', () => {
      const { fd } = memfd(5 * page);
      expect(A.lseek(fd, 0, SEEK_END)).toBe(5 * page);
      const d1 = A.dup(fd, true);
      const d2 = A.dup(fd, false);
      expect(fdFlags(d1) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
      expect(fdFlags(d2) & O_CLOEXEC_OCTAL).toBe(0);
      expect(fs.fstatSync(d1).ino).toBe(fs.fstatSync(fd).ino);
      A.close(d1);
      A.close(d2);
      A.close(fd);
    });

    test('memfd seals', () => {
      const { fd } = memfd(page);
      A.addSeals(fd, uapi.F_SEAL_SHRINK);
      expect(thrown(() => A.ftruncate(fd, 0))).toMatchObject({ code: 'EPERM', syscall: 'ftruncate' });
      A.ftruncate(fd, 2 * page); // growing is still allowed
      A.close(fd);
    });
  });

  describe('(i) AF_UNIX fd passing', () => {
    test.each([
      ['SOCK_SEQPACKET', () => A.abi.SOCK_SEQPACKET],
      ['SOCK_STREAM', () => A.abi.SOCK_STREAM],
    ])('%s: 3 memfds and a payload arrive CLOEXEC, same inodes', (_label, type) => {
      const [a, b] = A.socketpair(type());
      for (const s of [a, b]) expect(fdFlags(s) & (O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK)).toBe(O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK);
      const sent = [memfd(page), memfd(page), memfd(page)].map((m) => m.fd);
      expect(A.sendFds(a, Buffer.from('hello'), sent)).toBe(5);
      const msg = A.recvFds(b, 64, 8);
      expect(msg).toMatchObject({ truncated: false, controlTruncated: false, foreignControl: false, eof: false });
      expect(Buffer.from(msg.payload).toString()).toBe('hello');
      expect(msg.fds).toHaveLength(3);
      msg.fds.forEach((fd, i) => {
        expect(fd).not.toBe(sent[i]);
        expect(fdFlags(fd) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
        expect(fs.fstatSync(fd).ino).toBe(fs.fstatSync(sent[i]).ino);
      });
      [...sent, ...msg.fds, a, b].forEach((fd) => A.close(fd));
    });

    test('maxFds too small: controlTruncated, and the fds that did arrive are returned', () => {
      const before = fdCount();
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      const sent = [memfd(page), memfd(page), memfd(page)].map((m) => m.fd);
      A.sendFds(a, new Uint8Array([1]), sent);
      const msg = A.recvFds(b, 64, 1);
      expect(msg.controlTruncated).toBe(true);
      expect(msg.fds.length).toBeGreaterThanOrEqual(1); // the cmsg buffer rounds up: maybe 2
      expect(msg.fds.length).toBeLessThan(3);
      [...sent, ...msg.fds, a, b].forEach((fd) => A.close(fd));
      expect(fdCount()).toBe(before);
    });

    test('SEQPACKET: a longer payload is truncated; no fds at all is fine', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      A.sendFds(a, Buffer.from('0123456789'), []);
      const msg = A.recvFds(b, 4, 0);
      expect(msg).toMatchObject({ truncated: true, fds: [], eof: false });
      expect(Buffer.from(msg.payload).toString()).toBe('0123');
      A.close(a);
      A.close(b);
    });

    test('nothing to read: EAGAIN; a closed stream peer: eof', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      expect(thrown(() => A.recvFds(b, 16, 4))).toMatchObject({ code: 'EAGAIN', errno: -os.constants.errno.EAGAIN, syscall: 'recvmsg' });
      A.close(a);
      const msg = A.recvFds(b, 16, 4);
      expect(msg).toMatchObject({ eof: true, fds: [] });
      expect(msg.payload.length).toBe(0);
      expect(thrown(() => A.sendFds(b, new Uint8Array(1), []))).toMatchObject({ code: 'EPIPE', syscall: 'sendmsg' });
      A.close(b);
    });

    test('bind/listen/accept/connect over a path in a temp dir', () => {
      const where = path.join(tmp, 'sock');
      const server = A.socket(A.abi.SOCK_SEQPACKET);
      A.bind(server, where);
      A.listen(server, 4);
      expect(thrown(() => A.accept(server))).toMatchObject({ code: 'EAGAIN', syscall: 'accept' });
      const client = A.socket(A.abi.SOCK_SEQPACKET);
      A.connect(client, where);
      const conn = A.accept(server);
      expect(fdFlags(conn) & (O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK)).toBe(O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK);
      const { fd } = memfd(page);
      A.sendFds(client, new Uint8Array([7]), [fd]);
      const msg = A.recvFds(conn, 8, 2);
      expect(msg.fds).toHaveLength(1);
      expect(fs.fstatSync(msg.fds[0]).ino).toBe(fs.fstatSync(fd).ino);
      const second = A.socket(A.abi.SOCK_STREAM);
      expect(thrown(() => A.bind(second, where))).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', path: where });
      A.close(second);
      expect(thrown(() => A.connect(client, path.join(tmp, 'nobody')))).toMatchObject({ syscall: 'connect' });
      expect(thrown(() => A.bind(server, `/${'x'.repeat(200)}`))).toMatchObject({ code: 'ENAMETOOLONG', syscall: 'bind' });
      [fd, ...msg.fds, conn, client, server].forEach((f) => A.close(f));
    });

    test('abstract names (leading NUL) work too', () => {
      const name = `\0dma-heap-test-${process.pid}`;
      const server = A.socket(A.abi.SOCK_STREAM);
      A.bind(server, name);
      A.listen(server, 1);
      const client = A.socket(A.abi.SOCK_STREAM);
      A.connect(client, name);
      const conn = A.accept(server);
      [conn, client, server].forEach((f) => A.close(f));
    });

    test('poll fires readable when data arrives; stop() prevents further callbacks', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      const seen: Array<[unknown, number]> = [];
      let fired!: () => void;
      const first = new Promise<void>((r) => (fired = r));
      const poller = A.poll(b, 1, (err, events) => {
        seen.push([err, events]);
        fired();
      });
      await tick();
      expect(seen).toEqual([]);
      A.sendFds(a, new Uint8Array([1]), []);
      await first;
      expect(seen[0]).toEqual([null, 1]);
      poller.stop();
      poller.stop(); // idempotent
      const count = seen.length;
      A.sendFds(a, new Uint8Array([2]), []); // level-triggered: would fire again and again
      for (let i = 0; i < 5; i++) await tick();
      await new Promise((r) => setTimeout(r, 20));
      expect(seen.length).toBe(count);
      A.close(a);
      A.close(b);
    });

    test('poll: stop() from inside the callback; writable; bad fd', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      let calls = 0;
      await new Promise<void>((resolve) => {
        const p = A.poll(a, 2, (err, events) => {
          calls++;
          expect(err).toBeNull();
          expect(events & 2).toBe(2);
          p.stop();
          resolve();
        });
      });
      for (let i = 0; i < 5; i++) await tick();
      expect(calls).toBe(1);
      expect(thrown(() => A.poll(-1, 1, () => {}))).toMatchObject({ code: 'EBADF', syscall: 'poll' });
      A.close(a);
      A.close(b);
    });
  });

  describe('NativeKernel (what can be checked without /dev/dma_heap)', () => {
    const dirs = () => {
      const heapDir = fs.mkdtempSync(path.join(tmp, 'heaps-'));
      const sysDir = fs.mkdtempSync(path.join(tmp, 'sys-'));
      return { heapDir, sysDir };
    };

    test('backend, backing, page size; no heap directory: no heaps', () => {
      const k = new NativeKernel(A, { heapDir: path.join(tmp, 'absent') });
      expect(k.backend).toBe('kernel');
      expect(k.backing).toBe('dma-buf');
      expect(k.pageSize).toBe(page);
      expect(k.heaps()).toEqual([]);
    });

    test('heaps() lists the directory, sorted, with accessibility', () => {
      const d = dirs();
      fs.writeFileSync(path.join(d.heapDir, 'system'), '');
      fs.writeFileSync(path.join(d.heapDir, 'linux,cma'), '');
      fs.chmodSync(path.join(d.heapDir, 'system'), 0o000);
      const k = new NativeKernel(A, d);
      const heaps = k.heaps();
      expect(heaps.map((h) => h.name)).toEqual(['linux,cma', 'system']);
      expect(heaps[0]).toEqual({ name: 'linux,cma', path: `${d.heapDir}/linux,cma`, accessible: true });
      // root may read anything: only assert for other users
      if (process.getuid?.() !== 0) expect(heaps[1].accessible).toBe(false);
    });

    test('openHeap refuses what is not a character device: symlink, FIFO (without blocking), file, dir', () => {
      const d = dirs();
      fs.symlinkSync('/dev/null', path.join(d.heapDir, 'link'));
      execFileSync('mkfifo', [path.join(d.heapDir, 'fifo')]);
      fs.writeFileSync(path.join(d.heapDir, 'file'), '');
      fs.mkdirSync(path.join(d.heapDir, 'dir'));
      const k = new NativeKernel(A, d);
      const before = fdCount();
      for (const name of ['link', 'fifo', 'file', 'dir', '..', '.', 'a/b', '']) {
        expect(thrown(() => k.openHeap(name))).toMatchObject({ code: 'ENODEV', syscall: 'open', heap: name });
      }
      expect(thrown(() => k.openHeap('missing'))).toMatchObject({
        code: 'ENOENT',
        syscall: 'open',
        path: `${d.heapDir}/missing`,
        heap: 'missing',
      });
      expect(fdCount()).toBe(before);
    });

    test('openHeap checks the device number against sysfs when sysfs has one', () => {
      const { sysDir } = dirs();
      const rdev = devNumbers(fs.statSync('/dev/null', { bigint: true }).rdev);
      expect(rdev).toBe('1:3');
      fs.mkdirSync(path.join(sysDir, 'null'));
      const k = new NativeKernel(A, { heapDir: '/dev', sysDir });

      fs.writeFileSync(path.join(sysDir, 'null', 'dev'), '1:5\n');
      expect(thrown(() => k.openHeap('null'))).toMatchObject({ code: 'ENODEV', syscall: 'open', path: '/dev/null' });

      fs.writeFileSync(path.join(sysDir, 'null', 'dev'), `${rdev}\n`);
      const fd = k.openHeap('null');
      expect(fdFlags(fd) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
      k.close(fd);
    });

    test('devNumbers decodes glibc’s dev_t, large numbers included', () => {
      expect(devNumbers(0x103n)).toBe('1:3');
      // major 0x12345, minor 0x6789a: makedev's bit layout
      const major = 0x12345n;
      const minor = 0x6789an;
      const dev = ((major & 0xfffn) << 8n) | ((major & ~0xfffn) << 32n) | (minor & 0xffn) | ((minor & ~0xffn) << 12n);
      expect(devNumbers(dev)).toBe(`${major}:${minor}`);
    });

    test('seekEnd, mmap/munmap views, fdinfo, isDmaBuf on a memfd', () => {
      const k = new NativeKernel(A);
      const { fd } = memfd(2 * page);
      expect(k.seekEnd(fd)).toBe(2 * page);
      const view = k.mmap(fd, 2 * page, 0, true);
      expect(view).toBeInstanceOf(Uint8Array);
      view[0] = 1;
      // never moved to another thread: postMessage copies (Node 20) or refuses (Node 21+)
      const { port1, port2 } = new MessageChannel();
      try {
        port1.postMessage(view.buffer, [view.buffer as ArrayBuffer]);
      } catch {
        /* DataCloneError */
      }
      port1.close();
      port2.close();
      expect(view.length).toBe(2 * page);
      k.munmap(view);
      expect(view.length).toBe(0);
      k.munmap(view);
      expect(k.fdinfo(fd)).toMatch(/^flags:\s*0?2/m);
      expect(k.isDmaBuf(fd)).toBe(false); // a memfd has no exp_name line
      k.close(fd);
      expect(k.isDmaBuf(fd)).toBe(false); // closed: false, not a throw
      expect(thrown(() => k.fdinfo(fd))).toMatchObject({ code: 'EBADF' });
    });
  });

  describe('last', () => {
    test('no fd leaks across the whole file', () => {
      expect(fdCount()).toBe(fdsAtStart);
    });
  });
});
