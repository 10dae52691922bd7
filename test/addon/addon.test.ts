/** src/addon.cc: the per-environment instance, fd ownership across worker_threads. */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { addonStatus } from '../../lib/native/load';
import { addonFile, addonSuite, disabled, expectFdsAsBefore, FIONREAD, isOpen, mapsOf, settledFds, tick } from './helpers';

if (!disabled) {
  test('the addon loads, and says which file it is', () => {
    expect(addonStatus()).toEqual({ loaded: true, file: expect.stringMatching(/\.node$/) });
    expect(require.cache[addonStatus().file!]).toBeDefined();
  });
}

addonSuite('addon: addon', () => {
  describe('(f) worker_threads', () => {
    // The worker opens every kind of fd the addon makes, maps memory (kept, forgotten,
    // unmapped), polls, then goes away without cleaning up. One fd it disowns: that
    // one must survive it.
    const workerCode = (file: string) => `
      const a = require(${JSON.stringify(file)});
      const fs = require('fs');
      const { parentPort, workerData } = require('worker_threads');
      const page = a.pageSize(); // 16 KiB on some arm64 kernels: offsets are whole pages
      const fd = a.memfdCreate(workerData.name, 1);
      a.ftruncate(fd, 16 * page);
      globalThis.keep = [a.mmap(fd, 16 * page, 0, true), a.mmap(fd, page, page, true)];
      a.mmap(fd, page, 0, true); // forgotten
      a.munmap(a.mmap(fd, page, 0, true));
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
      const before = await settledFds();
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
      expectFdsAsBefore(before);
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
      const before = await settledFds();
      // qemu TCG (the VM rows, and qemu-user in test/prebuilds/check.js) is ~20x slower
      const rounds = process.env.DMA_HEAP_TEST_KERNEL || process.env.DMA_HEAP_TEST_EMULATED ? 10 : 60;
      for (let i = 0; i < rounds; i++) {
        const worker = new Worker(code, { eval: true });
        await new Promise((r) => worker.once('message', r));
        if (i % 2) await tick();
        await worker.terminate();
      }
      expectFdsAsBefore(before);
    });

    test('several workers at once, each with its own state', async () => {
      const before = await settledFds();
      const names = [1, 2, 3].map((i) => `dmaheap-many-${process.pid}-${i}`);
      const workers = names.map((name) => new Worker(workerCode(addonFile()), { eval: true, workerData: { mode: 'terminate', name } }));
      const kept = await Promise.all(workers.map((w) => new Promise<number>((r) => w.once('message', r))));
      await Promise.all(workers.map((w) => w.terminate()));
      for (const name of names) expect(mapsOf(name)).toBe(0);
      for (const fd of kept) fs.closeSync(fd);
      expectFdsAsBefore(before);
    });
  });
});
