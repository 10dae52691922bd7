import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { openHeap } from '../../lib/heap';
import { backends, newFds, openFds } from '../helpers/backends';
import { isOpen, settledFds } from '../helpers/fds';

const fixtures = path.join(__dirname, '..', 'fixtures');
/** cycles per worker in the stress test: 10,000 on a host; the TCG rows set fewer (test/kernel.js) */
const CYCLES = Number(process.env.DMA_HEAP_STRESS_CYCLES ?? 10000);

beforeAll(() => {
  if (!existsSync(path.join(__dirname, '..', '..', 'dist', 'index.js'))) {
    throw new Error('dist/ is missing: run `npm run build` (npm test does it first)');
  }
});

interface WorkerRun {
  worker: Worker;
  result: Promise<{ ok: number; backend: string; fds: number[] }>;
  exited: Promise<number>;
}

function runWorker(data: object): WorkerRun {
  const worker = new Worker(path.join(fixtures, 'alloc-worker.js'), { workerData: data });
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
  const result = new Promise<{ ok: number; backend: string; fds: number[] }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before reporting`)));
  });
  return { worker, result, exited };
}

describe.each(backends())('processes and threads: $label', (backend) => {
  const choice = backend.kind;

  test('several worker_threads allocate concurrently', async () => {
    const before = openFds();
    const runs = Array.from({ length: 4 }, () => runWorker({ backend: choice, count: 50, size: 64 * 1024 }));
    const results = await Promise.all(runs.map((r) => r.result));
    await Promise.all(runs.map((r) => r.exited));
    expect(results.map((r) => [r.ok, r.backend])).toEqual(Array(4).fill([50, choice]));
    expect(newFds(before)).toEqual([]);
  });

  test(`stress: 4 workers x ${CYCLES} allocate/map/close cycles, fd count back where it started`, async () => {
    const before = await settledFds();
    const runs = Array.from({ length: 4 }, () => runWorker({ backend: choice, count: CYCLES, size: 4096 }));
    const results = await Promise.all(runs.map((r) => r.result));
    expect(await Promise.all(runs.map((r) => r.exited))).toEqual([0, 0, 0, 0]);
    expect(results.map((r) => r.ok)).toEqual(Array(4).fill(CYCLES));
    expect(newFds(before)).toEqual([]);
    expect([...before].filter((fd) => !isOpen(fd))).toEqual([]); // and none closed that was not ours
  }, 900_000);

  test('a worker terminated while holding mapped buffers releases them', async () => {
    const before = openFds();
    const { worker, result, exited } = runWorker({ backend: choice, count: 16, size: 64 * 1024, leak: true });
    const { fds } = await result;
    expect(fds).toHaveLength(16);
    await worker.terminate();
    await exited;
    expect(newFds(before)).toEqual([]);
  });

  test('a worker terminated with allocAsync calls in flight leaks no fd', async () => {
    const before = openFds();
    for (let round = 0; round < 3; round++) {
      const worker = new Worker(path.join(fixtures, 'async-worker.js'), { workerData: { backend: choice, count: 64 } });
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      await new Promise((resolve) => worker.once('message', resolve));
      await worker.terminate();
      await exited;
    }
    // Completions still on the pool when a worker died close their fds as they land.
    for (let i = 0; i < 50 && openFds().size !== before.size; i++) await new Promise((r) => setTimeout(r, 100));
    expect(newFds(before)).toEqual([]);
  });

  test('a child process that exits holding buffers leaves the parent unharmed', () => {
    using heap = openHeap('system', backend.options());
    using mine = heap.alloc(4096);
    mine.bytes().fill(0x11);
    const child = spawnSync(process.execPath, [path.join(fixtures, 'alloc-and-exit.js'), choice], { encoding: 'utf8' });
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe(`${choice} 8`);
    expect(child.status).toBe(0);
    expect(mine.bytes().every((x) => x === 0x11)).toBe(true);
    using again = heap.alloc(1 << 20);
    expect(again.bytes().every((x) => x === 0)).toBe(true);
  });
});
