/**
 * A hostile peer that is not written in JS (test/adversarial/fixtures/hostile_peer.py, Python's
 * socket.send_fds): malformed frames, wrong fd counts, foreign fds, floods and abrupt
 * disconnects on both socket types, against the README's consumer (a child process running
 * it as written: no 'error' listener, `for await` in an async 'connection' handler), while a
 * well-behaved JS client keeps being served. Then the other direction: a consumer that tries
 * to break the producer's buffer through the fd it was given.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { addonStatus, DmaBufChannel, DmaBufChannelError, openHeap, type DmaBuf, type Heap } from '../../lib';
import { holdings, leaked } from './helpers';
import { node, python, requireDist, scratchDir, type Proc } from './procs';
import { testIf } from '../helpers/skip';

const withAddon = addonStatus().loaded;
// Without the addon there are no fds to pass and no channel (ERR_DMA_HEAP_NO_ADDON): the fuzz
// covers that refusal; here every test needs real sockets.
const testShare = testIf(withAddon, 'sharing needs the native addon');

type Echo = { echo: number; seen: { ino: number; first: number; size: number }[]; served: number; errors: number; holding: { fds: number; maps: number }; fdTargets: string[] };

/** one good client per socket type: sends a buffer it filled, expects the server to answer what it saw */
class GoodClient {
  channel: DmaBufChannel<Echo, { echo: number }>;
  n = 0;
  constructor(
    readonly where: string,
    readonly type: 'seqpacket' | 'stream',
    readonly heap: Heap,
  ) {
    this.channel = DmaBufChannel.connect<Echo, { echo: number }>(where, { type });
  }
  async served(): Promise<Echo> {
    const i = this.n++;
    const buf: DmaBuf = this.heap.alloc(4096);
    try {
      buf.write(Buffer.from([i & 0xff]), 0);
      const ino = buf.info().ino;
      await this.channel.send([buf], { echo: i });
      const { buffers, payload } = await this.channel.receive();
      expect(buffers).toEqual([]);
      expect(payload.echo).toBe(i);
      expect(payload.seen).toEqual([{ ino, first: i & 0xff, size: 4096 }]);
      return payload;
    } finally {
      buf.close();
    }
  }
  close(): void {
    this.channel.close();
  }
}

describe('a hostile peer in Python', () => {
  let dir: string;
  beforeAll(() => {
    requireDist();
    dir = scratchDir('peer');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  testShare("the README's consumer survives every attack on both socket types, a good client is served throughout, nothing is lost", async () => {
    const seq = path.join(dir, 'seq.sock');
    const stream = path.join(dir, 'stream.sock');
    const server: Proc = node('consumer-server.js', [seq, stream]);
    const heap = openHeap('system', { backend: 'software' });
    const clients: GoodClient[] = [];
    const reports: unknown[] = [];
    try {
      expect((await server.next()).ready).toBe(true);
      clients.push(new GoodClient(seq, 'seqpacket', heap), new GoodClient(stream, 'stream', heap));
      await Promise.all(clients.map((c) => c.served()));
      // The baseline is taken after both clients were served, so both connections are accepted:
      // taken from the first round, client 0's answer could come before the server accepted
      // client 1, and the end then found one socket "leaked" (CI, session 10: 23 fds, not 22).
      const base = await clients[0].served();
      const attackers = [python(['attack', seq, 'seqpacket']), python(['attack', stream, 'stream'])];
      let running = attackers.length;
      const done = attackers.map(async (p) => {
        for (;;) {
          let line: unknown;
          try {
            line = await p.next();
          } catch {
            break;
          }
          reports.push(line);
        }
        const exit = await p.closed;
        running--;
        expect({ exit, stderr: p.stderr() }).toEqual({ exit: { code: 0, signal: null }, stderr: '' });
      });
      // served while the attacks run, on both types
      let rounds = 0;
      while (running > 0) {
        await Promise.all(clients.map((c) => c.served()));
        rounds++;
      }
      await Promise.all(done);
      // every hostile connection is gone: the server comes back to what it held (bounded wait)
      // (30 s: on a loaded 2-core machine the last hostile connections' teardown was seen to take
      // longer than the 5 s this once allowed; a leak never comes back at all)
      let last = await clients[0].served();
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && (last.holding.fds !== base.holding.fds || last.holding.maps !== base.holding.maps)) {
        await new Promise((r) => setTimeout(r, 20));
        last = await clients[0].served();
      }
      expect({ ...last.holding, fdTargets: last.fdTargets }).toEqual({ ...base.holding, fdTargets: base.fdTargets });
      await clients[1].served();
      // and a new client is served as the first was
      const fresh = new GoodClient(stream, 'stream', heap);
      clients.push(fresh);
      await fresh.served();
      expect(server.child.exitCode).toBeNull();
      const out = path.resolve(__dirname, '../../.test-results');
      mkdirSync(out, { recursive: true });
      writeFileSync(path.join(out, 'adversarial-peer.json'), JSON.stringify({ rounds, reports }, null, 2));
      expect(reports.length).toBe(14); // 7 scenarios x 2 socket types, each reported
    } finally {
      clients.forEach((c) => c.close());
      heap.close();
      server.child.kill('SIGTERM');
    }
    const exit = await server.closed;
    expect({ exit, stderr: server.stderr() }).toEqual({ exit: { code: null, signal: 'SIGTERM' }, stderr: '' });
  });

  testShare('received fds that are not usable buffers are refused at the door, or served read-only correctly', async () => {
    for (const type of ['seqpacket', 'stream'] as const) {
      const where = path.join(dir, `door-${type}.sock`);
      const server = DmaBufChannel.listen(where, { type });
      const before = holdings();
      const attacker = python(['attack', where, type, 'foreign']);
      const [channel] = (await new Promise((resolve) => server.once('connection', (c) => resolve([c])))) as [DmaBufChannel];
      const outcomes: string[] = [];
      for (;;) {
        let m;
        try {
          m = await channel.receive();
        } catch (err) {
          const e = err as DmaBufChannelError;
          if (e.code === 'ERR_DMA_HEAP_CHANNEL_CLOSED') break;
          expect(e).toEqual(expect.objectContaining({ name: 'DmaBufChannelError', code: 'ERR_DMA_HEAP_BAD_MESSAGE' }));
          outcomes.push(`refused ${e.reason}`);
          continue;
        }
        // what got through must work as what it says it is
        for (const b of m.buffers) {
          expect(b.read(0, 1)[0]).toBe(0x5a);
          if (!b.readOnly) b.write(Buffer.from([0x5a]), 0);
          b.close();
        }
        outcomes.push(`served ${m.payload}`);
      }
      await attacker.closed;
      server.close();
      expect(outcomes.length).toBe(24);
      const readOnly = ['served read-only memfd', 'served read-only memfd beside a good buffer'];
      expect(outcomes.filter((o) => o.startsWith('served') && !readOnly.includes(o))).toEqual([]);
      expect(leaked(before)).toBe('');
    }
  });

  testShare('the for-await consumer skips refused messages and reports each on the channel and the server', async () => {
    const where = path.join(dir, 'contract.sock');
    const server = DmaBufChannel.listen(where, { type: 'seqpacket' });
    const onServer: unknown[] = [];
    server.on('refused', (err: DmaBufChannelError, ch: DmaBufChannel) => onServer.push([err.code, err.reason, ch instanceof DmaBufChannel]));
    const got: unknown[] = [];
    const onChannel: string[] = [];
    const loop = new Promise<void>((resolve, reject) => {
      server.on('connection', async (channel: DmaBufChannel) => {
        channel.on('refused', (err: DmaBufChannelError) => onChannel.push(err.reason));
        try {
          for await (const { buffers, payload } of channel) {
            got.push(payload);
            buffers.forEach((b) => b.close());
          }
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
    const attacker = python(['attack', where, 'seqpacket', 'fd_counts']);
    expect((await attacker.next()).scenario).toBe('fd_counts');
    await attacker.closed;
    await loop; // ends quietly when the peer hangs up
    server.close();
    expect(got).toEqual([]);
    expect(onChannel.length).toBe(6);
    expect(onServer).toEqual(onChannel.map((reason) => ['ERR_DMA_HEAP_BAD_MESSAGE', reason, true]));
  });

  testShare("a consumer can't seal, shrink or grow the producer's software buffer", async () => {
    const where = path.join(dir, 'consume.sock');
    const consumer = python(['consume', where]);
    expect((await consumer.next()).listening).toBe(where);
    using heap = openHeap('system', { backend: 'software' });
    using buf = heap.alloc(8192); // not mapped yet: F_SEAL_WRITE would succeed on an unguarded memfd
    buf.write(Buffer.from('before'), 0);
    using channel = DmaBufChannel.connect(where);
    await channel.send([buf], 'take it');
    const attempts = await consumer.next();
    expect(attempts).toEqual(
      expect.objectContaining({ write: 'EPERM', futureWrite: 'EPERM', grow: 'EPERM', seal: 'EPERM', 'truncate-shrink': 'EPERM', 'truncate-grow': 'EPERM' }),
    );
    // the owner's buffer is untouched and fully usable
    expect(buf.size).toBe(8192);
    expect(buf.read(0, 6).toString()).toBe('before');
    buf.write(Buffer.from('after!'), 8186);
    const view = new Uint8Array(buf.map());
    expect(Buffer.from(view.subarray(8186)).toString()).toBe('after!');
    expect((await consumer.closed).code).toBe(0);
  });
});
