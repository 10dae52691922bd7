import { constants } from 'node:os';
import { type AccessContext } from '../../lib/framework';
import { decodeAllocationData, DMA_HEAP_IOCTL_ALLOC, encodeAllocationData, O_RDWR } from '../../lib/uapi';
import { alloc, allocFrom, checkNoFdLeaks, eachBacking, openFds, thrown } from './helpers';

checkNoFdLeaks();

eachBacking((make) => {
  describe('access policy', () => {
    test('default: allow; a denied open is EACCES on the device path', () => {
      const fw = make();
      expect(fw.kernel.heaps().every((h) => h.accessible)).toBe(true);
      fw.setAccess('system', 'deny');
      expect(fw.kernel.heaps().find((h) => h.name === 'system')?.accessible).toBe(false);
      const e = thrown(() => fw.kernel.openHeap('system'));
      expect(e).toMatchObject({
        code: 'EACCES',
        errno: -constants.errno.EACCES,
        syscall: 'open',
        path: '/dev/dma_heap/system',
        heap: 'system',
      });
      expect(fw.kernel.fds()).toEqual([]);
      fw.setAccess('system', undefined); // back to the default
      fw.kernel.close(fw.kernel.openHeap('system'));
    });

    test('mode/uid/gid like a device node: 0600 root refuses a user; 0660 video admits its members; root passes', () => {
      const fw = make({ credentials: { uid: 1000, gid: 1000, groups: [1000] } });
      fw.setAccess('system', { mode: 0o600 });
      expect(thrown(() => fw.kernel.openHeap('system')).code).toBe('EACCES');
      fw.setAccess('system', { mode: 0o660, gid: 44 });
      expect(thrown(() => fw.kernel.openHeap('system')).code).toBe('EACCES');
      fw.credentials.groups = [1000, 44];
      fw.kernel.close(fw.kernel.openHeap('system'));
      fw.setAccess('system', { mode: 0o644 });
      fw.credentials.groups = [];
      fw.kernel.close(fw.kernel.openHeap('system')); // others may read
      fw.setAccess('system', { mode: 0o400, uid: 1000 });
      fw.kernel.close(fw.kernel.openHeap('system')); // the owner
      fw.setAccess('system', { mode: 0 });
      fw.credentials.uid = 0;
      fw.kernel.close(fw.kernel.openHeap('system')); // CAP_DAC_OVERRIDE
    });

    test('a predicate sees the heap and the credentials; a framework-wide default', () => {
      const seen: AccessContext[] = [];
      const fw = make({
        access: (ctx) => {
          seen.push(ctx);
          return ctx.heap !== 'reserved';
        },
        credentials: { uid: 7, gid: 8, groups: [9] },
      });
      expect(fw.kernel.heaps().map((h) => [h.name, h.accessible])).toEqual([
        ['default_cma_region', true],
        ['reserved', false],
        ['system', true],
      ]);
      expect(seen.find((c) => c.heap === 'default_cma_region')).toEqual({
        heap: 'default_cma_region', path: '/dev/dma_heap/default_cma_region',
        uid: 7,
        gid: 8,
        groups: [9],
      });
      expect(thrown(() => fw.kernel.openHeap('reserved')).code).toBe('EACCES');
      fw.setAccess('deny');
      expect(thrown(() => fw.kernel.openHeap('system')).code).toBe('EACCES');
      fw.setAccess('system', 'allow');
      fw.kernel.close(fw.kernel.openHeap('system'));
    });

    test('a heap can bring its policy; bad policies are TypeErrors; unknown heaps are ENOENT first', () => {
      const fw = make({ builtins: false, access: 'deny' });
      fw.addHeap({ name: 'open', access: 'allow', ops: { allocate: () => null as never } });
      fw.kernel.close(fw.kernel.openHeap('open'));
      expect(() => fw.setAccess('open', 'sometimes' as never)).toThrow(TypeError);
      expect(() => fw.setAccess('nope', 'allow')).toThrow(RangeError);
      expect(() => fw.setAccess('nope', 'allow')).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining("'nope'") }));
      expect(() => fw.setAccess(7 as never, 'allow')).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
      expect(() => fw.setAccess('open', 'sometimes' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
      expect(thrown(() => fw.kernel.openHeap('nope')).code).toBe('ENOENT');
    });

    test('an open fd keeps working after the policy changes (checked at open, as the kernel does)', () => {
      const fw = make();
      const heapFd = fw.kernel.openHeap('system');
      fw.setAccess('system', 'deny');
      fw.kernel.close(alloc(fw, heapFd, 1));
      fw.kernel.close(heapFd);
    });
  });

  describe('fault injection', () => {
    test('fail the nth allocation once', () => {
      const fw = make();
      fw.faults.failAllocation({ nth: 2 });
      const heapFd = fw.kernel.openHeap('system');
      fw.kernel.close(alloc(fw, heapFd, 1));
      const arg = encodeAllocationData({ len: 1n, fd: 0, fdFlags: O_RDWR, heapFlags: 0n });
      const fds = fw.kernel.fds().length;
      expect(thrown(() => fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg))).toMatchObject({
        code: 'ENOMEM',
        syscall: 'ioctl',
        heap: 'system',
      });
      expect(decodeAllocationData(arg).fd).toBe(0); // copied back as it was
      expect(fw.kernel.fds().length).toBe(fds); // nothing leaked
      fw.kernel.close(alloc(fw, heapFd, 1));
      fw.kernel.close(alloc(fw, heapFd, 1));
      fw.kernel.close(heapFd);
    });

    test('every nth, with a chosen errno, for one heap; removable; rejected ALLOCs do not count', () => {
      const fw = make();
      const remove = fw.faults.failAllocation({ nth: 2, every: true, code: 'EIO', heap: 'system' });
      const results: string[] = [];
      const heapFd = fw.kernel.openHeap('system');
      expect(thrown(() => alloc(fw, heapFd, 0)).code).toBe('EINVAL'); // not counted: failed before
      for (let i = 0; i < 6; i++) {
        try {
          fw.kernel.close(alloc(fw, heapFd, 1));
          results.push('ok');
        } catch (e) {
          results.push((e as { code: string }).code);
        }
      }
      expect(results).toEqual(['ok', 'EIO', 'ok', 'EIO', 'ok', 'EIO']);
      fw.kernel.close(allocFrom(fw, 'reserved', 1)); // other heaps untouched
      fw.kernel.close(allocFrom(fw, 'reserved', 1));
      remove();
      fw.kernel.close(alloc(fw, heapFd, 1));
      fw.kernel.close(alloc(fw, heapFd, 1));
      fw.kernel.close(heapFd);
    });

    test('cap the bytes a heap has live: ENOMEM past it, room again after a release', () => {
      const fw = make();
      const p = fw.pageSize;
      fw.faults.capBytes('system', 2 * p);
      const a = allocFrom(fw, 'system', p);
      const b = allocFrom(fw, 'system', p);
      expect(fw.faults.bytesInUse('system')).toBe(2 * p);
      expect(thrown(() => allocFrom(fw, 'system', 1)).code).toBe('ENOMEM');
      fw.kernel.close(a);
      const c = allocFrom(fw, 'system', p);
      expect(thrown(() => allocFrom(fw, 'system', 2 * p)).code).toBe('ENOMEM');
      fw.faults.capBytes('system', null);
      const d = allocFrom(fw, 'system', 2 * p);
      for (const fd of [b, c, d]) fw.kernel.close(fd);
      expect(fw.faults.bytesInUse('system')).toBe(0);
    });

    test('clear() and argument checks', () => {
      const fw = make();
      fw.faults.failAllocation({ nth: 1 });
      fw.faults.capBytes('system', 0);
      fw.faults.clear();
      fw.kernel.close(allocFrom(fw, 'system', 1));
      // the package's one argument-error factory: Node's codes and classes
      expect(() => fw.faults.failAllocation({ nth: 0 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
      expect(() => fw.faults.failAllocation({ nth: 1, code: 'ENOPE' as never })).toThrow( // typed ErrnoCode; from JS still refused
        expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }),
      );
      expect(() => fw.faults.capBytes('system', -1)).toThrow(RangeError);
      expect(() => fw.faults.capBytes('system', 1.5)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
      expect(() => fw.faults.capBytes('system', '5' as never)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
      expect(() => fw.faults.capBytes(null as never, 5)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    });
  });

  test('a workload leaves no real descriptor behind', () => {
    const fw = make();
    const before = openFds();
    fw.faults.failAllocation({ nth: 3, every: true });
    const heapFd = fw.kernel.openHeap('system');
    const views: Uint8Array[] = [];
    for (let i = 0; i < 20; i++) {
      try {
        const fd = alloc(fw, heapFd, 4096 * (i + 1));
        const dup = fw.kernel.dup(fd, i % 2 === 0);
        views.push(fw.kernel.mmap(dup, 4096, 0, true));
        fw.kernel.close(fd);
        fw.kernel.close(dup);
      } catch (e) {
        expect((e as { code: string }).code).toBe('ENOMEM');
      }
    }
    fw.kernel.close(heapFd);
    for (const v of views) fw.kernel.munmap(v);
    expect([...openFds()].filter((f) => !before.has(f))).toEqual([]);
    expect(fw.faults.bytesInUse('system')).toBe(0);
  });
});
