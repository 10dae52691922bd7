/**
 * Hazard: a child process SIGKILLed while it holds dma-heap objects — the child-killed column
 * of the lifecycle matrix beside worker-terminated.test.ts, with the same stages: the child
 * walks create → open → allocate → map → share → close and is killed right after each stage
 * (and once holding a DmaBufChannel with a queued send, a pending receive and a listening
 * server). The parent is the peer: it gave the child a buffer it maps itself (with the addon),
 * and for the sharing stages it holds the other end of the child's DmaBufChannel. Whatever the
 * stage, the parent must not crash, must leak no fd, and what it holds must keep working:
 * buffer contents intact, its channel ended with a close reason, no unhandled error.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { openHeap } from '../../lib/heap';
import { loadAddon } from '../../lib/native/load';
import { DmaBufChannel, spawnWithBuffers, type DmaBufChannelError } from '../../lib/share';
import type { DmaBuf } from '../../lib/dmabuf';
import { gcUntil, newFds, openFds } from '../helpers/fds';

const DIST = path.resolve(__dirname, '../../dist/index.js');
const FIXTURE = path.join(__dirname, 'fixtures/child-stage.js');
const canShare = loadAddon() !== null;
const tmp = mkdtempSync(path.join(tmpdir(), 'dma-heap-child-hazard-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a bound on every wait, so a hang fails with a message instead of the jest timeout */
function within<T>(p: Promise<T>, what: string, ms = 60000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), ms);
    }),
  ]);
}

const unhandled: unknown[] = [];
const onUnhandled = (err: unknown) => unhandled.push(err);
beforeAll(async () => {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npm run build\` first; the child runs dist/`);
  process.on('unhandledRejection', onUnhandled);
  // spawning opens fds Node keeps for good (libuv's SIGCHLD pipe): do it once before counting
  await once(spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }), 'close');
});
afterAll(() => process.off('unhandledRejection', onUnhandled));

const STAGES = ['create', 'open', 'allocate', 'map', 'share', 'channel', 'close'] as const;
const sharing = new Set<string>(['share', 'channel']);
const noAddon = ' (skipped: no addon, so no fd passing; nothing to share)';
const matrix = (['kernel-or-software', 'software'] as const).flatMap((backend) =>
  STAGES.map((stage) => ({ backend, stage, name: `${backend}: killed after ${stage}${sharing.has(stage) && !canShare ? noAddon : ''}` })),
);

let serial = 0;

describe('a child SIGKILLed at each stage: no crash, no fd leak here, the peer keeps working', () => {
  test.each(matrix)('$name', async ({ backend, stage }) => {
    if (sharing.has(stage) && !canShare) {
      // without the addon buffers are JS memory and channels need the addon's sockets
      expect(() => DmaBufChannel.pair()).toThrow();
      return;
    }
    const before = openFds();
    const tag = `${process.pid}-${serial++}`;
    const sock = path.join(tmp, `parent-${tag}.sock`);
    const ownServer = path.join(tmp, `child-${tag}.sock`);
    const args = [FIXTURE, DIST, stage, backend === 'software' ? 'software' : 'auto', sock, ownServer];
    const opts: SpawnOptions = { stdio: ['ignore', 'pipe', 'inherit'] };

    const heap = openHeap('system');
    // the buffer the parent maps and (with the addon) the child inherits
    const shared: DmaBuf = heap.alloc(heap.pageSize, { name: 'parent-shared' });
    shared.bytes().fill(0x5a);

    // the parent's end of the child's channel (sharing stages)
    const server = sharing.has(stage) ? DmaBufChannel.listen(sock, stage === 'channel' ? { type: 'stream', maxPayload: 1 << 20 } : {}) : null;
    const serverErrors: unknown[] = [];
    server?.on('error', (e) => serverErrors.push(e));
    const connection = server ? (once(server, 'connection') as Promise<[DmaBufChannel]>) : null;

    const child: ChildProcess = canShare ? spawnWithBuffers(process.execPath, args, [shared], opts) : spawn(process.execPath, args, opts);
    const closed = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const first = await within(lines.next(), `the child to reach ${stage}`);
    expect(first.done).toBe(false);
    const report = JSON.parse(first.value as string);
    expect(report).toEqual(expect.objectContaining({ stage }));
    expect(report.error).toBeUndefined();

    let channel: DmaBufChannel | null = null;
    let ended: Promise<[DmaBufChannelError]> | null = null;
    let theirs: DmaBuf | null = null;
    if (connection) {
      [channel] = await within(connection, 'the child to connect');
      ended = once(channel, 'close') as Promise<[DmaBufChannelError]>;
    }
    if (stage === 'share') {
      expect(report.sawParent).toBe(true);
      // the child's own buffer, sent to us: we map it too
      const msg = await within(channel!.receive(), "the child's buffer");
      expect(msg.payload).toEqual({ stage: 'share' });
      theirs = msg.buffers[0];
      expect(theirs.bytes().every((b) => b === 7)).toBe(true);
    }

    // share: a receive of ours is waiting when the child dies. channel: we receive only after
    // it is dead (reading earlier would let its queued send finish), so we read what it left
    const waiting = stage === 'share' ? channel!.receive() : null;
    waiting?.catch(() => {});

    child.kill('SIGKILL');
    expect(await within(closed, 'the child to exit')).toEqual({ code: null, signal: 'SIGKILL' });

    // what we hold keeps working after the peer is gone
    expect(shared.bytes().every((b) => b === 0x5a)).toBe(true);
    shared.write(Buffer.from('still mine'));
    expect(shared.read(0, 10).toString()).toBe('still mine');
    if (theirs) {
      expect(theirs.bytes().every((b) => b === 7)).toBe(true); // the child's memory outlives the child
      theirs.bytes()[0] = 1;
      expect(theirs.read(0, 1)[0]).toBe(1);
    }
    if (channel) {
      // our receive ends with the close reason (a cut-off message, if the child died mid-send),
      // the channel emits 'close' with it, and a later receive rejects the same way
      const reasons = stage === 'share' ? ['peerClosed'] : ['peerClosed', 'midMessage'];
      const err = await within((waiting ?? channel.receive()).then(() => null, (e: DmaBufChannelError) => e), 'our receive to end');
      expect(err).toMatchObject({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED' });
      expect(reasons).toContain(err!.reason);
      const [reason] = await within(ended!, "our channel's 'close'");
      expect(channel.endReason).toBe(reason);
      expect(reason.reason).toBe(err!.reason);
      expect(channel.closed).toBe(true);
      await expect(channel.receive()).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED', reason: err!.reason });
    }

    theirs?.close();
    shared.close();
    heap.close();
    if (server) {
      server.close();
      await within(once(server, 'close'), 'the server to close');
    }
    expect(serverErrors).toEqual([]);
    expect(unhandled).toEqual([]);
    expect(await gcUntil(() => newFds(before).length === 0)).toBe(true);
    expect(newFds(before)).toEqual([]);
  });
});
