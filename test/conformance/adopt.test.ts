import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fromFd } from '../../lib/dmabuf';
import { DmaBuf } from '../../lib/dmabuf';
import { loadAddon } from '../../lib/native/load';
import type { SimulatedKernel } from '../../lib/framework';
import type { Heap } from '../../lib/heap';
import { openHeap } from '../../lib/heap';
import { backends, newFds, openFds } from '../helpers/backends';
import { testIf } from '../helpers/skip';
import { kernelOf } from '../../lib/kernel';

/** the software backend under test is a framework of its own: fromFd must look there */
const sameKernel = (h: Heap) => (kernelOf(h).backend === 'software' ? { framework: (kernelOf(h) as SimulatedKernel).framework } : {});

describe.each(backends())('DmaBuf.fromFd: $label', (backend) => {
  const heap = () => openHeap('system', backend.options());

  test('dup (default) adopts a copy: the caller keeps its fd, memory is shared', () => {
    using h = heap();
    using buf = h.alloc(4096, { name: 'shared' });
    buf.bytes()[0] = 42;
    using other = DmaBuf.fromFd(buf.fd, sameKernel(h));
    expect(other.fd).not.toBe(buf.fd);
    expect(other.size).toBe(buf.size);
    expect(other.tier).toBe(buf.tier);
    expect(other.heap).toBe('system');
    expect(other.bytes()[0]).toBe(42);
    expect(other.info().ino).toBe(buf.info().ino);
    other.close();
    expect(buf.bytes()[0]).toBe(42);
  });

  test('dup: false takes the fd over: the caller’s fd is closed, the DmaBuf holds the file', () => {
    using h = heap();
    using original = h.alloc(4096);
    original.bytes()[1] = 5;
    const fd = kernelOf(h).dup(original.fd, true);
    const before = openFds();
    const adopted = DmaBuf.fromFd(fd, { dup: false, ...sameKernel(h) });
    expect(openFds().has(fd)).toBe(adopted.fd === fd);
    expect(openFds().size).toBe(before.size);
    expect(adopted.bytes()[1]).toBe(5);
    adopted.close();
    expect(openFds().size).toBe(before.size - 1);
  });

  test('when fromFd refuses, the caller’s fd is untouched', () => {
    using h = heap();
    const before = openFds();
    expect(() => DmaBuf.fromFd(0.5 as never, { dup: false })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(openFds()).toEqual(before);
  });

  test('a read-only dma-buf is adopted read-only', () => {
    using h = heap();
    using ro = h.alloc(4096, { readOnly: true });
    using again = DmaBuf.fromFd(ro.fd, sameKernel(h));
    expect(again.readOnly).toBe(true);
    expect(() => again.map()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_READ_ONLY' }));
  });
});

describe('DmaBuf.fromFd refuses what is not a dma-buf', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('a regular file', () => {
    const file = path.join(dir, 'plain');
    writeFileSync(file, 'x'.repeat(4096));
    const fd = openSync(file, 'r+');
    const before = openFds();
    try {
      expect(() => fromFd(fd)).toThrow(expect.objectContaining({ name: 'DmaHeapError', code: 'EINVAL', message: expect.stringMatching(/regular file, not a dma-buf/) }));
      expect(newFds(before)).toEqual([]);
    } finally {
      closeSync(fd);
    }
  });

  testIf(loadAddon() !== null, 'needs the addon for a socketpair')('a pipe end and a socket', () => {
    const addon = loadAddon()!;
    const [a, b] = addon.socketpair(addon.abi.SOCK_STREAM);
    try {
      expect(() => fromFd(a)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/socket, not a dma-buf/) }));
    } finally {
      addon.close(a);
      addon.close(b);
    }
  });

  test('a pipe', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 5000)'], { stdio: ['pipe', 'ignore', 'ignore'] });
    const fd = (child.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    try {
      expect(() => fromFd(fd)).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/, not a dma-buf, /) }));
    } finally {
      child.kill();
    }
  });

  test('a closed fd is EBADF (a DmaHeapError), a negative or non-integer fd ERR_OUT_OF_RANGE, a non-number a TypeError', () => {
    const fd = openSync(__filename, 'r');
    closeSync(fd);
    expect(() => fromFd(fd)).toThrow(expect.objectContaining({ name: 'DmaHeapError', code: 'EBADF', errno: -9, syscall: 'fstat' }));
    expect(() => fromFd(-1)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(() => fromFd(1.5)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(() => fromFd('3' as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
