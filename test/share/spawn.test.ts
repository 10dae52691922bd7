import { once } from 'node:events';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openHeap } from '../../lib/heap';
import { DmaBufChannel, inheritedBuffers, spawnWithBuffers } from '../../lib/share';
import { allocShareable } from '../../lib/tiers';
import { hasUdmabuf } from '../../lib/native/udmabuf';
import { kernelRequired, newFds, openFds } from '../helpers/backends';
import { describeIf, testIf } from '../helpers/skip';
import { canShare, childByte, DIST, fill, holds, nextJson, parentByte, requireDist, runFixture, warmUpSpawn } from './helpers';

// The backend is openHeap's default choice: the real kernel in the VM rig, else the software framework.
describeIf(canShare, 'sharing needs the native addon')('spawnWithBuffers → inheritedBuffers', () => {
  beforeAll(async () => {
    requireDist();
    await warmUpSpawn();
  });

  test("the child maps the same memory: each side sees the other side's bytes, same ino", async () => {
    using heap = openHeap('system');
    if (kernelRequired) expect(heap.backend).toBe('kernel');
    const page = heap.pageSize;
    using a = heap.alloc(page, { name: 'frame-a' });
    using b = heap.alloc(3 * page);
    fill(a.bytes(), 0, parentByte);
    fill(b.bytes(), 1, parentByte);

    const run = runFixture((cmd, args, opts) => spawnWithBuffers(cmd, args, [a, b], opts), 'child-inherit.js', ['check']);
    const report = await nextJson(run.lines);
    expect(await run.closed).toEqual({ code: 0, signal: null });

    expect(report.described).toEqual([
      { fd: 3, size: page, tier: a.tier, name: 'frame-a' },
      { fd: 4, size: 3 * page, tier: b.tier },
    ]);
    expect(report.envCleared).toBe(true);
    expect(report.again).toBe(0); // adopted once only
    expect(report.buffers).toEqual([
      { size: page, tier: a.tier, ino: a.info().ino, name: 'frame-a', cloexec: true, sawParent: true },
      { size: 3 * page, tier: b.tier, ino: b.info().ino, cloexec: true, sawParent: true },
    ]);
    expect(holds(a.bytes(), 0, childByte)).toBe(true);
    expect(holds(b.bytes(), 1, childByte)).toBe(true);
  });

  testIf(hasUdmabuf() || kernelRequired, 'needs /dev/udmabuf (the VM has it)')(
    'a udmabuf buffer is shared the same way: a real dma-buf, exporter udmabuf on both sides',
    async () => {
      allocShareable(4096, { tiers: ['udmabuf'] }).close(); // opens /dev/udmabuf, kept for the thread
      const before = openFds();
      {
        using u = allocShareable(2 * 4096, { tiers: ['udmabuf'], name: 'udma-share' });
        expect(u.tier).toBe('udmabuf');
        fill(u.bytes(), 0, parentByte);
        const run = runFixture((cmd, args, opts) => spawnWithBuffers(cmd, args, [u], opts), 'child-inherit.js', ['check']);
        const report = await nextJson(run.lines);
        expect(await run.closed).toEqual({ code: 0, signal: null });
        expect(report.buffers[0]).toMatchObject({ tier: 'udmabuf', ino: u.info().ino, name: 'udma-share', sawParent: true });
        expect(holds(u.bytes(), 0, childByte)).toBe(true);
        expect(u.info().exporter).toBe('udmabuf');
      }
      expect(newFds(before)).toEqual([]);
    },
  );

  test('buffers go after the stdio entries the caller gives', async () => {
    using heap = openHeap('system');
    using a = heap.alloc(heap.pageSize);
    fill(a.bytes(), 0, parentByte);
    const run = runFixture((cmd, args, opts) => spawnWithBuffers(cmd, args, [a], opts), 'child-inherit.js', ['check'], [
      'ignore',
      'pipe',
      'inherit',
      'ignore',
    ]);
    const report = await nextJson(run.lines);
    expect(await run.closed).toEqual({ code: 0, signal: null });
    expect(report.described).toEqual([{ fd: 4, size: heap.pageSize, tier: a.tier }]);
    expect(report.buffers[0]).toMatchObject({ ino: a.info().ino, sawParent: true });
  });

  test('a child killed (SIGKILL) while mapping the buffer leaves it intact and leaks no fd here', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(2 * heap.pageSize);
    fill(buf.bytes(), 0, parentByte);
    const before = openFds();

    const run = runFixture((cmd, args, opts) => spawnWithBuffers(cmd, args, [buf], opts), 'child-inherit.js', ['hold']);
    const report = await nextJson(run.lines);
    expect(report.buffers[0]).toMatchObject({ ino: buf.info().ino, sawParent: true });
    run.child.kill('SIGKILL');
    expect(await run.closed).toEqual({ code: null, signal: 'SIGKILL' });

    expect(holds(buf.bytes(), 0, childByte)).toBe(true);
    buf.write(Buffer.from('still mine'));
    expect(buf.read(0, 10).toString()).toBe('still mine');
    expect(buf.info().size).toBe(2 * heap.pageSize);
    expect(newFds(before)).toEqual([]);
  });

  test('a worker takes its own reference by fd number (fromFd dup:true); its exit leaves ours', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    fill(buf.bytes(), 0, parentByte);
    const before = openFds();
    const worker = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const { fromFd } = require(workerData.adopt);
      const { answer } = require(workerData.pattern);
      // not closed: the worker's teardown must close its own fd, and only that
      parentPort.postMessage(answer(fromFd(workerData.fd, { dup: true }), 0));
      `,
      { eval: true, workerData: { fd: buf.fd, adopt: path.join(DIST, 'index.js'), pattern: path.join(__dirname, 'fixtures/pattern.js') } },
    );
    const exit = once(worker, 'exit');
    const [seen] = await once(worker, 'message');
    await exit;
    expect(seen).toMatchObject({ ino: buf.info().ino, size: buf.size, sawParent: true });
    expect(holds(buf.bytes(), 0, childByte)).toBe(true);
    expect(buf.info().size).toBe(heap.pageSize);
    expect(newFds(before)).toEqual([]);
  });

  test('a closed buffer is refused before anything is spawned', () => {
    using heap = openHeap('system');
    const buf = heap.alloc(heap.pageSize);
    buf.close();
    expect(() => spawnWithBuffers(process.execPath, ['-e', '0'], [buf])).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_CLOSED' }));
  });
});

describeIf(!canShare, 'the addon is loaded, so buffers are shareable')('sharing without the addon', () => {
  test('JS-memory buffers are refused clearly; channels need the addon', () => {
    using heap = openHeap('system');
    using buf = heap.alloc(4096);
    expect(buf.tier).toBe('js');
    expect(() => spawnWithBuffers(process.execPath, ['-e', '0'], [buf])).toThrow(
      expect.objectContaining({ code: 'ERR_DMA_HEAP_NOT_SHAREABLE' }),
    );
    expect(() => DmaBufChannel.pair()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_ADDON' }));
  });
});

test('inheritedBuffers() is empty in a process not started by spawnWithBuffers', () => {
  expect(process.env.DMA_HEAP_FDS).toBeUndefined();
  expect(inheritedBuffers()).toEqual([]);
});
