/** lib/native/kernel.ts: the real kernel, as far as a host without /dev/dma_heap can check it. */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { MessageChannel } from 'node:worker_threads';
import { NativeKernel,devNumbers } from '../../lib/native/kernel';
import { A, addonSuite, fdCount, fdFlags, memfd, O_CLOEXEC_OCTAL, page, scratchDir, thrown } from './helpers';

const tmp = scratchDir();

addonSuite('addon: native-kernel', () => {
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
      expect(heaps[0]).toEqual({ name: 'linux,cma', path: `${d.heapDir}/linux,cma`, accessible: true, kind: 'contiguous', accounted: false });
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
      const open = fdCount();
      expect(k.adoptDmaBuf(fd, false)).toBeUndefined(); // a memfd has no exp_name line
      expect(fdCount()).toBe(open); // its dup closed, the caller's fd left open (even with dup false)
      expect(thrown(() => k.adopt(fd, true))).toMatchObject({ code: 'EINVAL', message: expect.stringMatching(/, not a dma-buf, /) });
      expect(k.hasHeap('..')).toBe(false);
      k.close(fd);
      expect(thrown(() => k.adoptDmaBuf(fd, true))).toMatchObject({ code: 'EBADF' });
      expect(thrown(() => k.fdinfo(fd))).toMatchObject({ code: 'EBADF' });
    });
  });
});
