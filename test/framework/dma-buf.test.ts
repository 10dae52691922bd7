import fs from 'node:fs';
import type { Framework } from '../../lib/framework';
import {
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  encodeName,
  encodeU64,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
} from '../../lib/uapi';
import { gcUntil } from '../helpers/fds';
import { allocFrom, checkNoFdLeaks, eachBacking, fdinfoField, openFds, thrown } from './helpers';

checkNoFdLeaks();

const count = (fw: Framework, fd: number) => Number(fdinfoField(fw, fd, 'count'));
const sync = (fw: Framework, fd: number, flags: bigint) => fw.kernel.ioctl(fd, DMA_BUF_IOCTL_SYNC, encodeU64(flags));

eachBacking((make, backing) => {
  test('fdinfo: the 6.12 format, tab-separated; flags 02000002 for O_RDWR|O_CLOEXEC', () => {
    const fw = make();
    const fd = allocFrom(fw, 'system', 2 * fw.pageSize);
    const ino = fw.kernel.dmaBuf(fd)?.ino;
    expect(fw.kernel.fdinfo(fd)).toBe(
      `pos:\t0\nflags:\t02000002\nmnt_id:\t0\nino:\t${ino}\nsize:\t${2 * fw.pageSize}\ncount:\t1\nexp_name:\tsystem\n`,
    );
    if (backing === 'memfd') {
      // the buffer IS its memfd: same identity for a process that receives it
      expect(ino).toBe(fs.fstatSync(fd).ino);
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/memfd:dma-heap:system/);
    }
    fw.kernel.close(fd);
  });

  test('fdinfo flags follow fd_flags and each fd’s own O_CLOEXEC; inos are unique', () => {
    const fw = make();
    const ro = allocFrom(fw, 'system', 1, O_RDONLY);
    const inherit = allocFrom(fw, 'system', 1, O_RDWR);
    expect(fdinfoField(fw, ro, 'flags')).toBe('00');
    expect(fdinfoField(fw, inherit, 'flags')).toBe('02');
    const dup = fw.kernel.dup(inherit, true);
    expect(fdinfoField(fw, dup, 'flags')).toBe('02000002');
    expect(fdinfoField(fw, dup, 'ino')).toBe(fdinfoField(fw, inherit, 'ino'));
    expect(fdinfoField(fw, ro, 'ino')).not.toBe(fdinfoField(fw, inherit, 'ino'));
    if (backing === 'memfd') {
      // memfd fds are real: an inheritable buffer fd really lacks FD_CLOEXEC, a cloexec dup has it
      const realFlags = (fd: number) =>
        parseInt(/^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '', 8);
      expect(realFlags(inherit) & O_CLOEXEC).toBe(0);
      expect(realFlags(dup) & O_CLOEXEC).toBe(O_CLOEXEC);
    }
    for (const fd of [ro, inherit, dup]) fw.kernel.close(fd);
  });

  test('fdinfo of a heap device and of an fd that is not the framework’s', () => {
    const fw = make();
    const heapFd = fw.kernel.openHeap('system');
    expect(fw.kernel.fdinfo(heapFd)).toMatch(/^pos:\t0\nflags:\t02[0-7]{6}\nmnt_id:\t0\nino:\t\d+\n$/);
    fw.kernel.close(heapFd);
    expect(thrown(() => fw.kernel.fdinfo(heapFd))).toMatchObject({
      code: 'EBADF', // as the native kernel says for a closed fd (test/conformance/errors.test.ts)
      syscall: 'open',
      path: `/proc/self/fdinfo/${heapFd}`,
    });
  });

  test('seekEnd is the size; a heap device is not seekable (ESPIPE)', () => {
    const fw = make();
    const fd = allocFrom(fw, 'system', 5 * fw.pageSize + 1);
    expect(fw.kernel.seekEnd(fd)).toBe(6 * fw.pageSize);
    const heapFd = fw.kernel.openHeap('system');
    expect(thrown(() => fw.kernel.seekEnd(heapFd))).toMatchObject({ code: 'ESPIPE', syscall: 'lseek' });
    fw.kernel.close(heapFd);
    fw.kernel.close(fd);
    expect(thrown(() => fw.kernel.seekEnd(fd)).code).toBe('EBADF');
  });

  test('count: 1 fresh, 2 after dup, +1 per mapping, back down on close/munmap', () => {
    const fw = make();
    const fd = allocFrom(fw, 'system', fw.pageSize);
    expect(count(fw, fd)).toBe(1);
    const dup = fw.kernel.dup(fd, true);
    expect(count(fw, fd)).toBe(2);
    expect(count(fw, dup)).toBe(2);
    const a = fw.kernel.mmap(fd, fw.pageSize, 0, true);
    const b = fw.kernel.mmap(dup, fw.pageSize, 0, true);
    expect(count(fw, fd)).toBe(4);
    fw.kernel.munmap(a);
    expect(count(fw, fd)).toBe(3);
    fw.kernel.close(dup);
    expect(count(fw, fd)).toBe(2);
    fw.kernel.munmap(b);
    expect(count(fw, fd)).toBe(1);
    fw.kernel.close(fd);
    expect(fw.faults.bytesInUse('system')).toBe(0);
  });

  test('a mapping outlives its fd until munmap; then the view is detached', () => {
    const fw = make();
    const fd = allocFrom(fw, 'system', 2 * fw.pageSize);
    const view = fw.kernel.mmap(fd, 2 * fw.pageSize, 0, true);
    view.fill(7);
    fw.kernel.close(fd);
    expect(fw.kernel.isDmaBuf(fd)).toBe(false);
    expect(fw.faults.bytesInUse('system')).toBe(2 * fw.pageSize); // not released
    expect(view[2 * fw.pageSize - 1]).toBe(7);
    view[0] = 9;
    fw.kernel.munmap(view);
    expect(view.byteLength).toBe(0);
    expect(fw.faults.bytesInUse('system')).toBe(0);
    fw.kernel.munmap(view); // a second call does nothing
    expect(() => fw.kernel.munmap(new Uint8Array(4))).toThrow(TypeError);
  });

  test("another framework's munmap refuses a view (TypeError) and leaves it mapped", () => {
    const fw = make();
    const other = make();
    const fd = allocFrom(fw, 'system', fw.pageSize);
    const view = fw.kernel.mmap(fd, fw.pageSize, 0, true);
    expect(() => other.kernel.munmap(view)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    view[0] = 1;
    expect(view.byteLength).toBe(fw.pageSize);
    fw.kernel.munmap(view);
    fw.kernel.close(fd);
  });

  test('a view kept after munmap and close pins nothing of the buffer', async () => {
    const fw = make();
    const fd = allocFrom(fw, 'system', fw.pageSize);
    const view = fw.kernel.mmap(fd, fw.pageSize, 0, true);
    const dmabuf = new WeakRef(fw.kernel.dmaBuf(fd)!);
    fw.kernel.munmap(view);
    fw.kernel.close(fd);
    expect(await gcUntil(() => dmabuf.deref() === undefined)).toBe(true);
    expect(view.byteLength).toBe(0); // still held here, detached
    fw.kernel.munmap(view); // and still a no-op
  });

  test('two mappings share the pages; an offset mapping sees the right page', () => {
    const fw = make();
    const p = fw.pageSize;
    const fd = allocFrom(fw, 'system', 3 * p);
    const all = fw.kernel.mmap(fd, 3 * p, 0, true);
    const second = fw.kernel.mmap(fd, p, p, true);
    all[p] = 0x11;
    expect(second[0]).toBe(0x11);
    second[p - 1] = 0x22;
    expect(all[2 * p - 1]).toBe(0x22);
    fw.kernel.munmap(second);
    if (backing === 'memfd') expect(second.byteLength).toBe(0);
    // js: the documented limitation, the view lives until the buffer's last mapping goes
    else expect(second.byteLength).toBe(p);
    fw.kernel.munmap(all);
    expect(all.byteLength).toBe(0);
    expect(second.byteLength).toBe(0);
    // the data survives for a later mapping
    const again = fw.kernel.mmap(fd, 3 * p, 0, true);
    expect([again[p], again[2 * p - 1]]).toEqual([0x11, 0x22]);
    fw.kernel.munmap(again);
    fw.kernel.close(fd);
  });

  test('mmap bounds: page-aligned offset, length > 0, within the buffer (EINVAL)', () => {
    const fw = make();
    const p = fw.pageSize;
    const fd = allocFrom(fw, 'system', 2 * p);
    for (const [length, offset] of [
      [p, 1],
      [p, p / 2],
      [0, 0],
      [2 * p + 1, 0],
      [p + 1, p],
      [p, 2 * p],
      [-1, 0],
      [p, -p],
    ]) {
      expect(thrown(() => fw.kernel.mmap(fd, length, offset, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    }
    expect(count(fw, fd)).toBe(1); // failed mmaps hold nothing
    const tail = fw.kernel.mmap(fd, p - 10, p, true); // a partial last page is fine
    expect(tail.length).toBe(p - 10);
    fw.kernel.munmap(tail);
    fw.kernel.close(fd);
  });

  test('an O_RDONLY buffer refuses a writable mapping (EACCES), maps read-only; O_WRONLY maps nothing', () => {
    const fw = make();
    const ro = allocFrom(fw, 'system', fw.pageSize, O_RDONLY | O_CLOEXEC);
    expect(thrown(() => fw.kernel.mmap(ro, fw.pageSize, 0, true))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
    expect(thrown(() => fw.kernel.writeMapped(ro, 0, new Uint8Array([1])))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
    const dst = new Uint8Array(8).fill(1);
    fw.kernel.readMapped(ro, 100, dst);
    expect([...dst]).toEqual(Array(8).fill(0));
    fw.kernel.close(ro);
    const wo = allocFrom(fw, 'system', fw.pageSize, O_WRONLY | O_CLOEXEC);
    expect(thrown(() => fw.kernel.mmap(wo, fw.pageSize, 0, true)).code).toBe('EACCES');
    expect(thrown(() => fw.kernel.mmap(wo, fw.pageSize, 0, false)).code).toBe('EACCES');
    fw.kernel.close(wo);
  });

  test('a heap device cannot be mapped: ENODEV (EACCES if writable, it is open O_RDONLY)', () => {
    const fw = make();
    const heapFd = fw.kernel.openHeap('system');
    expect(thrown(() => fw.kernel.mmap(heapFd, 4096, 0, false)).code).toBe('ENODEV');
    expect(thrown(() => fw.kernel.mmap(heapFd, 4096, 0, true)).code).toBe('EACCES');
    fw.kernel.close(heapFd);
  });

  test('readMapped/writeMapped copy at any offset, across pages, without a lasting mapping', () => {
    const fw = make();
    const p = fw.pageSize;
    const fd = allocFrom(fw, 'system', 2 * p);
    const data = Uint8Array.from({ length: 100 }, (_, i) => i + 1);
    fw.kernel.writeMapped(fd, p - 50, data);
    const back = new Uint8Array(100);
    fw.kernel.readMapped(fd, p - 50, back);
    expect(back).toEqual(data);
    expect(count(fw, fd)).toBe(1);
    fw.kernel.readMapped(fd, 0, new Uint8Array(0)); // nothing
    expect(thrown(() => fw.kernel.readMapped(fd, 2 * p - 10, new Uint8Array(11))).code).toBe('EINVAL');
    const view = fw.kernel.mmap(fd, 2 * p, 0, true);
    expect(view.subarray(p - 50, p + 50)).toEqual(data);
    fw.kernel.munmap(view);
    fw.kernel.close(fd);
  });

  describe('DMA_BUF_IOCTL_SYNC', () => {
    test.each([
      [0n, 'EINVAL'],
      [1n, 'begin DMA_FROM_DEVICE'],
      [2n, 'begin DMA_TO_DEVICE'],
      [3n, 'begin DMA_BIDIRECTIONAL'],
      [4n, 'EINVAL'],
      [5n, 'end DMA_FROM_DEVICE'],
      [6n, 'end DMA_TO_DEVICE'],
      [7n, 'end DMA_BIDIRECTIONAL'],
      [8n, 'EINVAL'],
      [12n, 'EINVAL'],
      [13n, 'EINVAL'],
      [1n << 63n, 'EINVAL'],
    ])('flags %s → %s', (flags, expected) => {
      const fw = make();
      const fd = allocFrom(fw, 'system', 1);
      const state = fw.kernel.dmaBuf(fd)?.cpuAccess;
      if (expected === 'EINVAL') {
        expect(thrown(() => sync(fw, fd, flags))).toMatchObject({ code: 'EINVAL', syscall: 'ioctl' });
        expect(state).toEqual({ active: null, begins: 0, ends: 0 });
      } else {
        expect(sync(fw, fd, flags)).toBe(0);
        const [phase, direction] = expected.split(' ');
        expect(state).toEqual(
          phase === 'begin' ? { active: direction, begins: 1, ends: 0 } : { active: null, begins: 0, ends: 1 },
        );
      }
      fw.kernel.close(fd);
    });

    test('begin then end; a short argument reads zero-extended; NULL faults', () => {
      const fw = make();
      const fd = allocFrom(fw, 'system', 1);
      sync(fw, fd, 3n);
      expect(fw.kernel.dmaBuf(fd)?.cpuAccess.active).toBe('DMA_BIDIRECTIONAL');
      sync(fw, fd, 7n);
      expect(fw.kernel.dmaBuf(fd)?.cpuAccess).toEqual({ active: null, begins: 1, ends: 1 });
      fw.kernel.ioctl(fd, DMA_BUF_IOCTL_SYNC, new Uint8Array([1, 0, 0, 0]));
      expect(fw.kernel.dmaBuf(fd)?.cpuAccess.active).toBe('DMA_FROM_DEVICE');
      expect(thrown(() => fw.kernel.ioctl(fd, DMA_BUF_IOCTL_SYNC, null)).code).toBe('EFAULT');
      fw.kernel.close(fd);
    });
  });

  describe('DMA_BUF_SET_NAME', () => {
    test('31 characters: set, shown in fdinfo as name:; 32: EINVAL, the old name stays', () => {
      const fw = make();
      const fd = allocFrom(fw, 'system', 1);
      expect(fdinfoField(fw, fd, 'name')).toBeUndefined();
      const ok = 'a'.repeat(31);
      expect(fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, encodeName(ok))).toBe(0);
      expect(fdinfoField(fw, fd, 'name')).toBe(ok);
      expect(fw.kernel.fdinfo(fd).endsWith(`exp_name:\tsystem\nname:\t${ok}\n`)).toBe(true);
      expect(thrown(() => fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, encodeName('b'.repeat(32))))).toMatchObject({
        code: 'EINVAL',
        syscall: 'ioctl',
      });
      expect(fdinfoField(fw, fd, 'name')).toBe(ok);
      fw.kernel.close(fd);
    });

    test('SET_NAME_A works too; the name is shared by dups; "" is a name (an empty name: line)', () => {
      const fw = make();
      const fd = allocFrom(fw, 'system', 1);
      const dup = fw.kernel.dup(fd, true);
      fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_A, encodeName('camera0'));
      expect(fdinfoField(fw, dup, 'name')).toBe('camera0');
      fw.kernel.ioctl(dup, DMA_BUF_SET_NAME_B, encodeName(''));
      expect(fw.kernel.fdinfo(fd)).toMatch(/\nname:\t\n$/);
      fw.kernel.close(dup);
      fw.kernel.close(fd);
    });

    test('no NUL within 32 bytes is EINVAL; a short string ends at the zeroed scratch; NULL faults', () => {
      const fw = make();
      const fd = allocFrom(fw, 'system', 1);
      expect(thrown(() => fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, new Uint8Array(40).fill(0x41))).code).toBe('EINVAL');
      expect(thrown(() => fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, new Uint8Array(32).fill(0x41))).code).toBe('EINVAL');
      fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, new Uint8Array(5).fill(0x41));
      expect(fdinfoField(fw, fd, 'name')).toBe('AAAAA');
      expect(thrown(() => fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, null)).code).toBe('EFAULT');
      const trailing = new Uint8Array(40).fill(0x41);
      trailing[3] = 0;
      fw.kernel.ioctl(fd, DMA_BUF_SET_NAME_B, trailing); // stops at the NUL
      expect(fdinfoField(fw, fd, 'name')).toBe('AAA');
      fw.kernel.close(fd);
    });

    test('other dma-buf ioctls are ENOTTY; the sync_file ones answer as on 6.12 (flags 0: EINVAL)', () => {
      const fw = make();
      const fd = allocFrom(fw, 'system', 1);
      for (const cmd of [0x40086204, 0x80086201]) {
        expect(thrown(() => fw.kernel.ioctl(fd, cmd, new Uint8Array(16))).code).toBe('ENOTTY');
      }
      for (const cmd of [0xc0086202, 0x40086203]) {
        expect(thrown(() => fw.kernel.ioctl(fd, cmd, new Uint8Array(16))).code).toBe('EINVAL');
      }
      fw.kernel.close(fd);
    });
  });

  test.each([4096, 1024 * 1024])('zeroed on every allocation, across 32 reused buffers of %i bytes', (size) => {
    const fw = make();
    const heapFd = fw.kernel.openHeap('system');
    for (let i = 0; i < 32; i++) {
      const fd = allocFrom(fw, 'system', size);
      const view = fw.kernel.mmap(fd, size, 0, true);
      expect(view.every((b) => b === 0)).toBe(true);
      view.fill(0xff);
      fw.kernel.munmap(view);
      fw.kernel.close(fd);
    }
    fw.kernel.close(heapFd);
  });

  test('dup, isDmaBuf, close: EBADF for unknown fds; no real fd left behind', () => {
    const fw = make();
    const before = openFds();
    const heapFd = fw.kernel.openHeap('system');
    const fd = allocFrom(fw, 'system', 1);
    const dups = [fw.kernel.dup(fd, true), fw.kernel.dup(fd, false), fw.kernel.dup(heapFd, true)];
    expect(fw.kernel.isDmaBuf(fd)).toBe(true);
    expect(fw.kernel.isDmaBuf(dups[1])).toBe(true);
    expect(fw.kernel.isDmaBuf(heapFd)).toBe(false);
    expect(fw.kernel.isDmaBuf(dups[2])).toBe(false);
    const view = fw.kernel.mmap(dups[0], 1, 0, true);
    // every simulated fd is a real descriptor
    expect(openFds().size).toBe(before.size + 5);
    for (const f of [heapFd, fd, ...dups]) fw.kernel.close(f);
    expect(thrown(() => fw.kernel.close(fd))).toMatchObject({ code: 'EBADF', syscall: 'close' });
    expect(thrown(() => fw.kernel.dup(fd, true))).toMatchObject({ code: 'EBADF', syscall: 'dup' });
    fw.kernel.munmap(view);
    expect([...openFds()].filter((f) => !before.has(f))).toEqual([]);
    expect(fw.kernel.fds()).toEqual([]);
  });

  test('dispose unmaps and closes everything', () => {
    const fw = make();
    const before = openFds();
    const fd = allocFrom(fw, 'system', 1);
    const view = fw.kernel.mmap(fd, 1, 0, true);
    fw.kernel.openHeap('system');
    fw.dispose();
    expect(view.byteLength).toBe(0);
    expect(fw.kernel.fds()).toEqual([]);
    expect([...openFds()].filter((f) => !before.has(f))).toEqual([]);
  });
});
