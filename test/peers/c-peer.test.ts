/**
 * The wire format (WIRE-FORMAT.md) spoken by a program that is not the package: the C peer
 * (test/peers/c/dmabuf_peer.c, C11 and libc only), built here with the C compiler found on
 * PATH, against DmaBufChannel on both socket types. Node sends a memfd and a heap buffer (a
 * real dma-buf on a real kernel: the Debian VM row runs this file where it has a compiler) and
 * the C side's checksums must be Node's; the C side sends sealed memfds and Node checks sizes,
 * contents, names and payload and replies; and frames the package must refuse (a wrong fd
 * count, a memfd not sealed against shrinking, one sealed against writing) are refused with
 * every fd they carried closed, the channel going on to answer. Lending: C consumes a Node
 * producer's lent pool buffers and gives each back with a release frame.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { addonStatus, allocShareable, DmaBufChannel, openHeap, type DmaBuf, type DmaBufServer } from '../../lib';
import { fdTarget, newFds, openFds } from '../helpers/fds';
import { describeIf } from '../helpers/skip';

type SocketType = 'seqpacket' | 'stream';

const SOURCE = path.join(__dirname, 'c', 'dmabuf_peer.c');
const F_SEAL_SHRINK = 2;

/** the first C compiler that answers --version: $CC, cc, gcc, clang */
function findCompiler(): string | null {
  for (const cc of [process.env.CC, 'cc', 'gcc', 'clang']) {
    if (cc && spawnSync(cc, ['--version'], { stdio: 'ignore' }).status === 0) return cc;
  }
  return null;
}

const compiler = findCompiler();
const withAddon = addonStatus().loaded;
const runs = withAddon && compiler !== null;
const why = !withAddon
  ? 'sharing needs the native addon'
  : 'no C compiler ($CC, cc, gcc or clang) on PATH to build test/peers/c/dmabuf_peer.c';

/** 64-bit FNV-1a as the C peer prints it: 16 hex digits */
function fnv1a(bytes: Uint8Array): string {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h.toString(16).padStart(16, '0');
}

/** what the C sender writes into byte j of its buffer i */
const cByte = (i: number, j: number) => (31 * j + 17 * i + 5) & 0xff;
/** what Node writes into byte j of its buffer i */
const nodeByte = (i: number, j: number) => (j * 7 + i * 101 + 3) & 0xff;

/** how the C peer reports one fd it mapped */
interface Seen {
  size: number;
  fnv1a: string;
  seals: number;
  dmabuf: boolean;
}
/** the C peer's one line per frame received */
interface Line {
  fds: number;
  buffers: Seen[];
  json: string;
}

/** the C sender's payload, and Node's reply to it */
type FromC = { from: string; n: number; page: number; fnv1a: string[] };
type ToC = { sizes: number[]; fnv1a: string[] };

let dir = '';
let binary = '';

interface Peer {
  child: ChildProcess;
  next(): Promise<any>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

function peer(args: string[]): Peer {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // 'close': the child exited and its pipes are closed (no fd of ours left open)
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stderr })),
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    async next() {
      const r = await lines.next();
      if (r.done) throw new Error(`the C peer exited without reporting: ${(await exit).stderr}`);
      return JSON.parse(r.value);
    },
    exit,
  };
}

const ok = { code: 0, signal: null, stderr: '' };

/** the server's first connection, or the C peer's stderr if it exits before connecting */
async function accepted<R, S>(server: DmaBufServer<R, S>, c: Peer): Promise<DmaBufChannel<R, S>> {
  const exited = c.exit.then((e) => Promise.reject(new Error(`the C peer exited before connecting: ${JSON.stringify(e)}`)));
  const [channel] = (await Promise.race([once(server, 'connection'), exited])) as [DmaBufChannel<R, S>];
  return channel;
}

describeIf(runs, why).each<SocketType>(['seqpacket', 'stream'])('the C peer speaks the wire format (%s)', (type) => {
  const live: { close(): void }[] = [];
  const peers: Peer[] = [];

  beforeAll(() => {
    // The software framework that adopts received memfds opens what it keeps (its fd-number
    // source) on first use: not during a leak check.
    const warm = openHeap('system', { backend: 'software' });
    warm.alloc(warm.pageSize).close();
    warm.close();
    if (binary) return;
    dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-c-peer-'));
    const out = path.join(dir, 'dmabuf_peer');
    const cc = spawnSync(compiler!, ['-std=c11', '-Wall', '-Wextra', '-Werror', '-O2', '-o', out, SOURCE], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`${compiler} failed on ${SOURCE}:\n${cc.stderr}${cc.error ?? ''}`);
    binary = out;
  });

  afterEach(async () => {
    for (const x of live.splice(0).reverse()) x.close();
    for (const p of peers.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  });

  const run = (args: string[]) => {
    const p = peer(args);
    peers.push(p);
    return p;
  };
  const track = <T extends { close(): void }>(x: T): T => (live.push(x), x);

  test('Node sends a memfd and a heap buffer: the C receiver maps both, its checksums are ours, its reply arrives', async () => {
    const where = path.join(dir, `recv-${type}.sock`);
    const c = run(['recv', where, type]);
    expect(await c.next()).toEqual({ ready: true });

    const memfd = track(allocShareable(3 * 4096, { tiers: ['memfd'], name: 'node-memfd' }));
    const heap = track(openHeap('system'));
    const hbuf = track(heap.alloc(2 * heap.pageSize));
    const bufs: DmaBuf[] = [memfd, hbuf];
    const sums = bufs.map((b, i) =>
      b.cpuAccess('write', (bytes) => {
        for (let j = 0; j < bytes.length; j++) bytes[j] = nodeByte(i, j);
        return fnv1a(bytes);
      }),
    );
    const payload = { from: 'node', quoted: 'a "quote", a \\ and a\nnewline', n: [1, 2.5, null] };

    const channel = track(DmaBufChannel.connect<{ seen: Seen[]; jsonBytes: number }, typeof payload>(where, { type }));
    await channel.send(bufs, payload);
    const reply = await channel.receive();
    const line: Line = await c.next();
    expect(await c.exit).toEqual(ok);

    // what C saw is what Node wrote, byte for byte (a dma-buf's read under DMA_BUF_IOCTL_SYNC)
    expect(line.fds).toBe(2);
    expect(line.buffers.map((s) => [s.size, s.fnv1a])).toEqual(bufs.map((b, i) => [b.size, sums[i]]));
    expect(line.buffers[0]).toMatchObject({ dmabuf: false });
    expect(line.buffers[0].seals & F_SEAL_SHRINK).toBe(F_SEAL_SHRINK);
    expect(line.buffers[1].dmabuf).toBe(hbuf.isDmaBuf);
    // the frame's JSON, as C received it: one description per fd, in order, then the payload
    const sent = JSON.parse(line.json);
    expect(sent).toEqual({
      buffers: [{ size: memfd.size, tier: 'memfd', name: 'node-memfd' }, expect.objectContaining({ size: hbuf.size, tier: hbuf.tier })],
      payload,
    });
    expect(Object.keys(sent.buffers[1]).every((k) => ['size', 'tier', 'name'].includes(k))).toBe(true);
    // and C's reply frame: no fds, its payload what it saw
    expect(reply.buffers).toEqual([]);
    expect(reply.payload).toEqual({ seen: line.buffers, jsonBytes: Buffer.byteLength(line.json) });
  });

  test('C sends three sealed memfds to DmaBufChannel.listen: sizes, contents, names and payload arrive; the reply reaches C', async () => {
    const where = path.join(dir, `send-${type}.sock`);
    const server = track(DmaBufChannel.listen<FromC, ToC>(where, { type }));
    const c = run(['send', where, type, '3']);
    const channel = track(await accepted(server, c));

    const m = await channel.receive();
    const { page } = m.payload;
    expect(m.payload).toEqual({ from: 'dmabuf_peer', n: 3, page, fnv1a: [expect.any(String), expect.any(String), expect.any(String)] });
    expect(page % 4096).toBe(0);
    m.buffers.forEach((b) => track(b));
    expect(m.syncFiles).toEqual([]);
    expect(m.buffers.map((b) => [b.size, b.tier, b.info().name])).toEqual([0, 1, 2].map((i) => [(i + 1) * page, 'memfd', `c-peer-${i}`]));
    const sums = m.buffers.map((b, i) =>
      b.cpuAccess('read', (bytes) => {
        for (let j = 0; j < bytes.length; j++) if (bytes[j] !== cByte(i, j)) throw new Error(`buffer ${i} byte ${j} is ${bytes[j]}, not ${cByte(i, j)}`);
        return fnv1a(bytes);
      }),
    );
    expect(sums).toEqual(m.payload.fnv1a);

    await channel.send([], { sizes: m.buffers.map((b) => b.size), fnv1a: sums });
    const line: Line = await c.next();
    expect(await c.exit).toEqual(ok);
    expect(line.fds).toBe(0);
    expect(JSON.parse(line.json)).toEqual({ buffers: [], payload: { sizes: [page, 2 * page, 3 * page], fnv1a: sums } });

    // the received memfds close with their buffers: nothing of C's is left open here
    for (const b of m.buffers) b.close();
    expect(openFdTargets().filter((t) => t.includes('c-peer-'))).toEqual([]);
  });

  test("a C consumer returns a Node producer's pool buffers: a 2-buffer pool lends 12 frames, each released by C with a release frame", async () => {
    const where = path.join(dir, `consume-${type}.sock`);
    const server = track(DmaBufChannel.listen<never, { frame: number }>(where, { type }));
    const frames = 12;
    const c = run(['consume', where, type, String(frames)]);
    const channel = track(await accepted(server, c));
    const heap = track(openHeap('system'));
    const pool = track(heap.createPool({ size: 2 * heap.pageSize, count: 2 }));
    const backs: Promise<string>[] = [];
    const sums: string[] = [];
    for (let i = 0; i < frames; i++) {
      const lease = await pool.acquireAsync(); // waits for C's release once both are out
      sums.push(lease.buffer.cpuAccess('write', () => fnv1a(lease.bytes().fill((i * 37 + 1) & 0xff))));
      backs.push(channel.lend([lease], { frame: i }));
      expect(pool.stats().total).toBe(2);
    }
    expect(await Promise.all(backs)).toEqual(Array(frames).fill('released'));
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 2, total: 2 });
    const lines: Line[] = [];
    for (let i = 0; i < frames; i++) lines.push(await c.next());
    expect(await c.exit).toEqual(ok);
    // C saw each frame's bytes as Node wrote them, and its lend id
    expect(lines.map((l) => l.buffers[0].fnv1a)).toEqual(sums);
    expect(lines.map((l) => JSON.parse(l.json))).toEqual(
      sums.map((_, i) => ({ buffers: [expect.objectContaining({ size: 2 * heap.pageSize })], lend: expect.any(Number), payload: { frame: i } })),
    );
  });

  test.each([
    ['fdcount', 'fdCount', 'the header counts one fd more than travels', /the frame says 3 fds, 2 came with it/],
    ['unsealed', 'notDmaBuf', 'a memfd not sealed against shrinking', /not sealed against shrinking/],
    ['write-sealed', 'notDmaBuf', 'a memfd sealed against writing', /sealed against writing/],
  ])('C sends a bad frame (%s): refused as %s with every fd it carried closed; the channel still answers', async (fault, reason, about, message) => {
    const where = path.join(dir, `bad-${fault}-${type}.sock`);
    const server = track(DmaBufChannel.listen(where, { type }));
    const c = run(['send', where, type, '2', fault]);
    const channel = track(await accepted(server, c));

    // the connection is accepted: from here the only fds to arrive are the frame's
    const before = openFds();
    const err = await channel.receive().then(
      () => new Error(`${about} was accepted`),
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'DmaBufChannelError', code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason, message: expect.stringMatching(message) });
    expect(newFds(before)).toEqual([]);
    expect(openFdTargets().filter((t) => t.includes('c-peer-'))).toEqual([]);

    await channel.send([], { refused: reason });
    const line: Line = await c.next();
    expect(await c.exit).toEqual(ok);
    expect(JSON.parse(line.json)).toEqual({ buffers: [], payload: { refused: reason } });
  });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** what this process's fds point at (memfds read `/memfd:<name> (deleted)`) */
function openFdTargets(): string[] {
  return [...openFds()].map(fdTarget);
}
