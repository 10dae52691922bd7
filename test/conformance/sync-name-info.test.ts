import { readlinkSync } from 'node:fs';
import { openHeap } from '../../lib/heap';
import { DMA_BUF_IOCTL_SYNC, DMA_BUF_SET_NAME_A, DMA_BUF_SET_NAME_B, encodeName, encodeU64 } from '../../lib/uapi';
import { backends } from '../helpers/backends';
import { kernelOf } from '../../lib/kernel';

describe.each(backends())('CPU access, names and info: $label', (backend) => {
  const heap = () => openHeap('system', backend.options());

  test.each(['read', 'write', 'readwrite'] as const)('a %s bracket begins and ends', (access) => {
    using h = heap();
    using buf = h.alloc(4096);
    buf.beginCpuAccess(access);
    buf.endCpuAccess(access);
    expect(buf.cpuAccess(access, (bytes) => bytes.length)).toBe(buf.size);
  });

  test('cpuAccess ends the bracket when the callback throws or rejects', async () => {
    using h = heap();
    using buf = h.alloc(4096);
    expect(() =>
      buf.cpuAccess('write', () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    await expect(buf.cpuAccess('read', async () => Promise.reject(new Error('later')))).rejects.toThrow('later');
    await expect(buf.cpuAccess('readwrite', async (b) => b[0])).resolves.toBe(0);
  });

  test('an unknown access mode is a TypeError', () => {
    using h = heap();
    using buf = h.alloc(4096);
    expect(() => buf.beginCpuAccess('rw' as never)).toThrow(TypeError);
  });

  test.each([
    ['no READ or WRITE', 0n],
    ['END alone', 4n],
    ['an unknown bit', 8n],
    ['a high bit', 1n << 63n],
  ])('SYNC with %s fails with EINVAL', (_what, flags) => {
    using h = heap();
    using buf = h.alloc(4096);
    expect(() => kernelOf(h).ioctl(buf.fd, DMA_BUF_IOCTL_SYNC, encodeU64(flags))).toThrow(
      expect.objectContaining({ code: 'EINVAL', errno: -22, syscall: 'ioctl' }),
    );
  });

  test('a name reads back exactly as set; one UTF-8 cannot hold (a lone surrogate) is refused, not changed', () => {
    using h = heap();
    using buf = h.alloc(4096);
    for (const name of [' padded ', 'line\nbreak', 'cr\r', '\t', 'é€😀']) {
      buf.setName(name);
      expect(buf.info().name).toBe(name);
    }
    expect(() => buf.setName('\udc80')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(buf.info().name).toBe('é€😀');
  });

  test('setName shows in info(); 31 bytes fit, 32 do not', () => {
    using h = heap();
    using buf = h.alloc(4096);
    expect(buf.info().name).toBeUndefined();
    buf.setName('camera0');
    expect(buf.info().name).toBe('camera0');
    buf.setName('x'.repeat(31));
    expect(buf.info().name).toBe('x'.repeat(31));
    expect(() => buf.setName('y'.repeat(32))).toThrow(RangeError);
    expect(buf.info().name).toBe('x'.repeat(31));
    // The kernel enforces it too (strndup_user with DMA_BUF_NAME_LEN).
    expect(() => kernelOf(h).ioctl(buf.fd, DMA_BUF_SET_NAME_B, encodeName('z'.repeat(32)))).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    kernelOf(h).ioctl(buf.fd, DMA_BUF_SET_NAME_A, encodeName('via-A'));
    expect(buf.info().name).toBe('via-A');
  });

  test.each([' padded ', 'line\nbreak', 'cr\rhidden', '\n', 'tab\tx\n', 'esc\x1b[31m', 'x\nname:\ty\nsize:\t1', 'é😀', ''])(
    'a name reads back exactly as set: %j',
    (name) => {
      using h = heap();
      using buf = h.alloc(4096);
      buf.setName(name);
      expect(buf.info()).toMatchObject({ name, size: h.pageSize, exporter: 'system' });
    },
  );

  test('alloc({ name }) names the buffer at birth', () => {
    using h = heap();
    using buf = h.alloc(4096, { name: 'npu-in' });
    expect(buf.info()).toMatchObject({ name: 'npu-in', exporter: 'system', size: h.pageSize });
    expect(() => h.alloc(4096, { name: 'n'.repeat(40) })).toThrow(RangeError);
  });

  test('info(): count follows dup, close and mmap; ino is per buffer', () => {
    using h = heap();
    using a = h.alloc(4096);
    using b = h.alloc(4096);
    expect(a.info().count).toBe(1);
    expect(a.info().ino).not.toBe(b.info().ino);
    const d = a.dup();
    expect(a.info().count).toBe(2);
    expect(d.info().ino).toBe(a.info().ino);
    d.close();
    expect(a.info().count).toBe(1);
    a.map();
    expect(a.info().count).toBe(2); // the mapping holds the file (vm_file)
  });

  if (backend.kind === 'kernel') {
    test('the kernel names the fd /dmabuf:<name> in /proc/self/fd', () => {
      using h = heap();
      using buf = h.alloc(4096, { name: 'display0' });
      expect(readlinkSync(`/proc/self/fd/${buf.fd}`)).toBe('/dmabuf:display0');
    });
  }
});
