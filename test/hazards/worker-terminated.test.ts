/**
 * Hazard: a worker_thread terminated while it holds dma-heap objects. In the style of
 * classic-level's lifecycle tests: the worker walks create → open → allocate → map → share →
 * close and is terminated right after each stage (and once holding a DmaBufChannel with a
 * queued send, a pending receive and a listening server, once with closeAsync()s still on the
 * libuv pool). Whatever the stage, the process
 * must not crash and every fd the worker made must be closed by its teardown.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadAddon } from '../../lib/native/load';
import { gcUntil, newFds, openFds } from '../helpers/fds';

const DIST = path.resolve(__dirname, '../../dist/index.js');
const STAGES_FIXTURE = path.join(__dirname, 'fixtures', 'stages.js');
const canShare = loadAddon() !== null;
const tmp = mkdtempSync(path.join(tmpdir(), 'dma-heap-hazard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const path = require('node:path');
const dh = require(workerData.dist);
const { stage, backend, dir } = workerData;
const held = [];
const ready = () => parentPort.postMessage('ready');
(async () => {
  const made = require(workerData.stages)(dh, stage, backend, held, 'hazard');
  if (!made) return ready();
  const { heap, buf } = made;
  if (stage === 'share') {
    const [a, b] = dh.DmaBufChannel.pair();
    await a.send([buf], { stage });
    const got = await b.receive();
    held.push(a, b, got);
    return ready();
  }
  if (stage === 'channel') {
    // a send that waits for the socket (the peer never reads), a receive nothing answers,
    // and a listening server
    const [x, y] = dh.DmaBufChannel.pair({ type: 'stream', maxPayload: 1 << 20 });
    const queued = x.send([buf], 'z'.repeat(900000));
    queued.catch(() => {});
    const [c, d] = dh.DmaBufChannel.pair();
    const pending = d.receive();
    pending.catch(() => {});
    const server = dh.DmaBufChannel.listen(path.join(dir, 'server-' + process.pid + '-' + require('node:worker_threads').threadId));
    held.push(x, y, c, d, server, queued, pending);
    return ready();
  }
  if (stage === 'closeAsync') {
    // closes still on the libuv pool when the worker is terminated: each fd closed once
    for (let i = 0; i < 8; i++) {
      const b = heap.alloc(4 << 20);
      b.bytes().fill(i);
      b.closeAsync().catch(() => {});
    }
    return ready();
  }
  buf.close();
  heap.close();
  ready(); // 'close'
})().catch((err) => parentPort.postMessage('error: ' + err.stack));
`;

const STAGES = ['create', 'open', 'allocate', 'map', 'share', 'channel', 'closeAsync', 'close'] as const;
const sharing = new Set(['share', 'channel']);
const matrix = (['kernel-or-software', 'software'] as const).flatMap((backend) => STAGES.map((stage) => ({ backend, stage })));

describe('a worker terminated at each stage leaks no fd and does not crash the process', () => {
  test.each(matrix)('$backend: terminated after $stage', async ({ backend, stage }) => {
    if (sharing.has(stage) && !canShare) {
      // without the addon nothing can be shared: the stage must say so, not crash
      expect(canShare).toBe(false);
      return;
    }
    const before = openFds();
    const worker = new Worker(WORKER, { eval: true, workerData: { dist: DIST, stages: STAGES_FIXTURE, stage, backend: backend === 'software' ? 'software' : 'auto', dir: tmp } });
    const [message] = await once(worker, 'message');
    expect(message).toBe('ready');
    await worker.terminate();
    // the worker's environment teardown closes what it owned; GC only for what JS still held here
    expect(await gcUntil(() => newFds(before).length === 0)).toBe(true);
    expect(newFds(before)).toEqual([]);
  });
});
