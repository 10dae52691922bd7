/**
 * Hostile peers of the unixfd protocol (test/share/unixfd/fixtures/hostile_unixfd.py, no code of
 * the package): a sink that lies in every field, a client that releases what it does not hold.
 * Each lie gets a typed refusal with every fd closed; the process, the connection and the other
 * clients carry on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { addonStatus, allocShareable, UnixFdSink, UnixFdSource, type DmaBufChannelError, type UnixFdFrame } from '../../../lib';
import { openFds, settledFds } from '../../helpers/fds';
import { describeIf } from '../../helpers/skip';

const FIXTURE = path.join(__dirname, 'fixtures', 'hostile_unixfd.py');
const withAddon = addonStatus().loaded;

function python(args: string[]): { child: ChildProcess; lines: AsyncIterator<string> } {
  const child = spawn('python3', [FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines };
}

async function nextJson(lines: AsyncIterator<string>): Promise<Record<string, unknown>> {
  const { value, done } = await lines.next();
  if (done) throw new Error('the fixture ended early');
  return JSON.parse(value as string);
}

describeIf(withAddon, 'passing fds needs the native addon')('unixfd against hostile peers', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'unixfd-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('a sink that lies: each lie refused and typed, its fds closed, refused buffers given back; the good buffer and EOS still arrive', async () => {
    const before = await settledFds();
    const where = path.join(dir, 'lies.sock');
    const { child, lines } = python(['sink', where]);
    await nextJson(lines);
    const refused: DmaBufChannelError[] = [];
    const frames: UnixFdFrame[] = [];
    {
      using source = UnixFdSource.connect(where);
      source.on('refused', (e) => refused.push(e));
      for await (const f of source) frames.push(f);
      expect(source.eos).toBe(true);
      expect(source.caps).toMatchObject({ format: 'GRAY8', width: 64, height: 64 });
      const { sent } = await nextJson(lines);
      // every lie but the unknown command (ignored, as GStreamer does) is refused, typed
      expect(refused).toHaveLength((sent as number) - 1);
      for (const e of refused) expect(e).toMatchObject({ code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason: expect.stringMatching(/^(malformed|fdCount|notDmaBuf)$/) });
      expect(refused.map((e) => e.message).join('\n')).toMatch(/past|its fd has/);
      expect(frames).toHaveLength(1);
      const [f] = frames;
      expect(f).toMatchObject({ id: 200n, pts: 1000n, dts: null, duration: 33333333n, offset: 7n, offsetEnd: null, memoryType: 'shm' });
      expect(f.memories[0]).toMatchObject({ offset: 96, size: 4000 });
      expect([...f.memories[0].buffer.read(96, 4)]).toEqual([0x5a, 0x5a, 0x5a, 0x5a]);
      f.release();
    }
    const { released } = await nextJson(lines);
    // the good one, and every refused buffer whose id could be read: the sink gets them all back
    expect([...(released as number[])].sort((a, b) => a - b)).toEqual([101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 200]);
    await new Promise((r) => child.on('exit', r));
    expect([...openFds()].filter((fd) => !before.has(fd))).toEqual([]);
  }, 30_000);

  test('a client that releases what it does not hold: refused and typed; the buffer comes back once; an oversized command ends that client only', async () => {
    const where = path.join(dir, 'sink.sock');
    using sink = UnixFdSink.listen(where, { caps: 'video/x-raw,format=GRAY8,width=64,height=64' });
    const refused: DmaBufChannelError[] = [];
    sink.on('refused', (e) => refused.push(e));
    using buf = allocShareable(4096, { tiers: ['memfd'] });
    const { child, lines } = python(['client', where]);
    // a well-behaved client beside it, holding its frame
    await new Promise<void>((r) => {
      const check = () => (sink.clients === 1 ? r() : setTimeout(check, 10));
      check();
    });
    using good = UnixFdSource.connect(where);
    expect(good.peer).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() }); // the sink is this process
    await new Promise<void>((r) => {
      const check = () => (sink.clients === 2 ? r() : setTimeout(check, 10));
      check();
    });
    let back = false;
    const sent = sink.send({ memories: [buf] }).then(() => (back = true));
    const frame = await good.receive();
    const report = await nextJson(lines);
    expect(report.got).toEqual([
      { type: 2, fds: 0 },
      { type: 0, fds: 1 },
    ]);
    // its six lies are on their way (the unknown command is ignored): wait for the four refusals,
    // not for a fixed time (the VM rows run Python 20-40x slower)
    for (let i = 0; i < 1000 && refused.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(refused.map((e) => e.reason)).toEqual(['unknownLoan', 'badRelease', 'unknownLoan', 'malformed']);
    expect(back).toBe(false); // the good client still holds it
    frame!.release();
    await sent;
    expect(sink.pending).toBe(0);
    // its last lie (a 1 GiB payload) ends that client, not the sink or the other client
    const gone = new Promise((r) => sink.once('disconnect', (_peer, reason) => r(reason)));
    child.stdin!.end();
    expect(await gone).toMatchObject({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED' });
    expect(sink.clients).toBe(1);
    expect(good.closed).toBe(false);
    const again = sink.send({ memories: [buf] });
    (await good.receive())!.release();
    await again;
  }, 30_000);

  test('a flood of 200 connections past maxConnections: refused at once, the sink and its first clients carry on, no fd leaked', async () => {
    const before = await settledFds();
    const where = path.join(dir, 'flood.sock');
    {
      using sink = UnixFdSink.listen(where, { caps: 'video/x-raw', maxConnections: 4 });
      let refused = 0;
      sink.on('refusedConnection', (_peer, reason) => {
        expect(reason).toBe('maxConnections');
        refused++;
      });
      const sources = Array.from({ length: 200 }, () => UnixFdSource.connect(where));
      await new Promise<void>((r) => {
        const check = () => (refused === 196 ? r() : setTimeout(check, 10));
        check();
      });
      expect(sink.clients).toBe(4);
      using buf = allocShareable(4096, { tiers: ['memfd'] });
      const back = sink.send({ memories: [buf] });
      const frames = await Promise.all(sources.map((s) => s.receive().catch(() => null)));
      expect(frames.filter((f) => f !== null)).toHaveLength(4);
      for (const f of frames) f?.release();
      await back;
      for (const s of sources) s.close();
    }
    await new Promise((r) => setTimeout(r, 50));
    expect([...openFds()].filter((fd) => !before.has(fd))).toEqual([]);
  }, 30_000);

  test('a sink that sends its last buffer and EOS and goes at once: the release finds no one, EOS still arrives', async () => {
    const where = path.join(dir, 'quick.sock');
    const { lines } = python(['quick', where]);
    await nextJson(lines);
    using source = UnixFdSource.connect(where);
    const frame = await source.receive();
    await nextJson(lines); // the sink closed its end
    frame!.release(); // EPIPE: the peer reads no more; what it sent before is still ours
    expect(await source.receive()).toBeNull();
    expect(source.eos).toBe(true);
    await expect(source.receive()).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED', reason: 'peerClosed' });
  }, 30_000);

  test("send() reads a memory's { buffer, offset, size } once: a getter answering the check one thing and the use another cannot slip past", async () => {
    using sink = UnixFdSink.listen(path.join(dir, 'getter.sock'), { caps: 'video/x-raw' });
    using buf = allocShareable(4096, { tiers: ['memfd'] });
    let reads = 0;
    const memory = { buffer: buf };
    Object.defineProperty(memory, 'size', { enumerable: true, get: () => (reads++ === 0 ? 16 : 1e9) });
    await sink.send({ memories: [memory] }); // no client: back at once; the size checked (16) is the size used
    expect(reads).toBe(1);
  });
});
