/**
 * Issue 19, item 4: heaps that appear after start-up (heap modules, 7.x). The software
 * framework reports Framework.addHeap; the real kernel's directory is watched with inotify, here
 * on a scratch directory that does not exist yet (as /dev/dma_heap before the first heap module
 * loads). The 7.x row loads a real heap module under a running watcher
 * (test/kernel/heap-module.test.ts).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HeapWatcher, watchHeaps, type ListedHeap } from '../lib';
import { Framework } from '../lib/framework';
import { INTERNAL_CONSTRUCTOR } from '../lib/internal-token';
import { NativeKernel } from '../lib/native/kernel';
import { nativeKernel } from '../lib/chooser';
import { testIf } from './helpers/skip';

const noop = { allocate: () => { throw new Error('not used'); } };

test('software: each heap the framework adds is reported once, with its kind; heaps there at the start are not', async () => {
  const fw = new Framework();
  using watcher = watchHeaps({ framework: fw });
  const added: ListedHeap[] = [];
  watcher.on('added', (h) => added.push(h));
  fw.addHeap({ name: 'late', ops: noop });
  fw.addHeap({ name: 'later', ops: noop });
  await new Promise((r) => setImmediate(r));
  expect(added.map((h) => [h.name, h.kind, h.backend])).toEqual([
    ['late', 'other', 'software'],
    ['later', 'other', 'software'],
  ]);
  await new Promise((r) => setImmediate(r));
  expect(added).toHaveLength(2);
});

test('close() stops the reports, emits close once, and is idempotent; using closes', async () => {
  const fw = new Framework();
  const watcher = watchHeaps({ framework: fw });
  const added = jest.fn();
  const closed = jest.fn();
  watcher.on('added', added).on('close', closed);
  watcher.close();
  watcher.close();
  fw.addHeap({ name: 'after-close', ops: noop });
  await new Promise((r) => setImmediate(r));
  expect(added).not.toHaveBeenCalled();
  expect(closed).toHaveBeenCalledTimes(1);
  expect(watcher.closed).toBe(true);
  {
    using w = watchHeaps({ framework: fw });
    expect(w.closed).toBe(false);
  }
});

test('not for users: new HeapWatcher() without the token throws ERR_ILLEGAL_CONSTRUCTOR', () => {
  expect(() => new (HeapWatcher as unknown as new () => unknown)()).toThrow(expect.objectContaining({ code: 'ERR_ILLEGAL_CONSTRUCTOR', message: expect.stringMatching(/watchHeaps\(\)/) }));
});

test('bad options are refused before anything is watched', () => {
  expect(() => watchHeaps({ backend: 'gpu' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  expect(() => watchHeaps({ nmae: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  expect(() => watchHeaps({ framework: {} as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
});

describe('real kernel side, on a scratch directory (inotify)', () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-watch-'));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  const watcherOn = (heapDir: string) => new HeapWatcher(INTERNAL_CONSTRUCTOR, [new NativeKernel(undefined, { heapDir, sysDir: path.join(root, 'sys'), sysRoot: root })]);

  testIf(nativeKernel() !== null, 'the native addon is needed for NativeKernel')(
    'before the first heap there is no directory: its parent is watched, then the directory, and each heap is reported once',
    async () => {
      const heapDir = path.join(root, 'dma_heap');
      using watcher = watcherOn(heapDir);
      const seen: string[] = [];
      watcher.on('added', (h) => seen.push(`${h.name}:${h.kind}:${h.backend}`));
      fs.mkdirSync(heapDir);
      fs.writeFileSync(path.join(heapDir, 'system'), '');
      await waitFor(() => seen.length >= 1);
      fs.writeFileSync(path.join(heapDir, 'protected,secure-video'), '');
      await waitFor(() => seen.length >= 2);
      fs.writeFileSync(path.join(heapDir, 'system'), 'touched'); // an event, no new heap
      await new Promise((r) => setTimeout(r, 100));
      expect(seen).toEqual(['system:system:kernel', 'protected,secure-video:protected:kernel']);
    },
  );

  testIf(nativeKernel() !== null, 'the native addon is needed for NativeKernel')('heaps already there are not reported, the next one is', async () => {
    const heapDir = path.join(root, 'dma_heap');
    fs.mkdirSync(heapDir);
    fs.writeFileSync(path.join(heapDir, 'system'), '');
    using watcher = watcherOn(heapDir);
    const seen: string[] = [];
    watcher.on('added', (h) => seen.push(h.name));
    fs.writeFileSync(path.join(heapDir, 'reserved'), '');
    await waitFor(() => seen.length >= 1);
    expect(seen).toEqual(['reserved']);
  });

  testIf(nativeKernel() !== null, 'the native addon is needed for NativeKernel')('the directory removed and made again (inotify goes quiet on a removed one): the heaps in the new one are reported', async () => {
    const heapDir = path.join(root, 'dma_heap');
    fs.mkdirSync(heapDir);
    using watcher = watcherOn(heapDir);
    const seen: string[] = [];
    watcher.on('added', (h) => seen.push(h.name));
    fs.writeFileSync(path.join(heapDir, 'system'), '');
    await waitFor(() => seen.length >= 1);
    fs.rmSync(heapDir, { recursive: true });
    await new Promise((r) => setTimeout(r, 100));
    fs.mkdirSync(heapDir);
    fs.writeFileSync(path.join(heapDir, 'linux,cma'), '');
    await waitFor(() => seen.length >= 2);
    expect(seen).toEqual(['system', 'linux,cma']);
    expect(watcher.closed).toBe(false);
  });

  testIf(nativeKernel() !== null, 'the native addon is needed for NativeKernel')("a directory that cannot be watched: a DmaHeapError with fs.watch's errno and the path", () => {
    const heapDir = path.join(root, 'no', 'such', 'dma_heap');
    expect(() => watcherOn(heapDir)).toThrow(expect.objectContaining({ name: 'DmaHeapError', code: 'ENOENT', syscall: 'watch', path: path.join(root, 'no', 'such') }));
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
