/**
 * GStreamer's unixfd protocol against GStreamer itself (1.26, the cached trixie root:
 * test/gstreamer/root.js): `videotestsrc ! unixfdsink` into Node, and Node into
 * `unixfdsrc ! filesink`, bytes verified end to end. In the Debian VM row the same tests run on
 * the real kernel, where Node's buffers are dma-heap dma-bufs (memory type 1) and GStreamer
 * maps them as dma-buf memory.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { addonStatus, allocShareable, createShareablePool, DmaBuf, listHeaps, openHeap, UnixFdSink, UnixFdSource, type UnixFdFrame } from '../../../lib';
import { cachedGstRoot, gstLaunch, gstSocketDir, gstUnavailable } from '../../gstreamer/root';
import { openFds, settledFds } from '../../helpers/fds';
import { loadAddon } from '../../../lib/native/load';
import { Vgem } from '../../devices/devices';
import { testWith, vividNodes } from '../../helpers/expect';
import { describeIf } from '../../helpers/skip';

const root = cachedGstRoot();
const unavailable = !addonStatus().loaded ? 'passing fds needs the native addon' : gstUnavailable(root);

/** every gst-launch-1.0 started: none outlives its test (afterEach kills what is left) */
const children = new Set<ChildProcess>();
afterEach(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  children.clear();
});

/** the gst-launch-1.0 child, its stderr kept for failure messages, and its exit */
function launch(args: string[]): { child: ChildProcess; exited: Promise<number | null>; stderr: () => string } {
  const child = gstLaunch(['-q', ...args], { root });
  children.add(child);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stderr: () => err };
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** RGBA of videotestsrc's foreground-color 0xAARRGGBB */
const FG = 0xff112233;
const RGBA = [0x11, 0x22, 0x33, 0xff];

describeIf(unavailable === null, unavailable ?? 'runs')('GStreamer into Node: videotestsrc ! unixfdsink -> UnixFdSource', () => {
  let dir: ReturnType<typeof gstSocketDir>;
  beforeEach(() => {
    dir = gstSocketDir(root!);
  });
  afterEach(() => rmSync(dir.host, { recursive: true, force: true }));

  const pipeline = (n: number, extra: string[] = []) => [
    'videotestsrc', `num-buffers=${n}`, 'pattern=solid-color', `foreground-color=${FG}`, ...extra,
    '!', 'video/x-raw,format=RGBA,width=64,height=48,framerate=30/1',
    '!', 'unixfdsink', 'wait-for-connection=true', `socket-path=${dir.insideSocket}`,
  ];

  test('caps, timing and bytes of every frame arrive; EOS ends the loop; nothing leaks', async () => {
    const before = await settledFds();
    const gst = launch(pipeline(10));
    await until(() => existsSync(dir.hostSocket), 'the sink socket');
    const frames: { pts: bigint | null; duration: bigint | null; offset: bigint | null; first: number[]; last: number[]; tier: string; size: number }[] = [];
    {
      using source = UnixFdSource.connect(dir.hostSocket);
      const refused: Error[] = [];
      source.on('refused', (e) => refused.push(e));
      for await (const frame of source) {
        using f = frame;
        expect(f.caps).toMatchObject({ mediaType: 'video/x-raw', format: 'RGBA', width: 64, height: 48, framerate: { num: 30, den: 1 } });
        expect(f.memoryType).toBe('shm');
        expect(f.memories).toHaveLength(1);
        const m = f.memories[0];
        // GStreamer 1.26.2's memfds are not sealed against writing: mapped, not only read()
        const view = m.buffer.bytes().subarray(m.offset, m.offset + m.size);
        expect([...view.subarray(0, 4)]).toEqual(RGBA);
        frames.push({
          pts: f.pts,
          duration: f.duration,
          offset: f.offset,
          first: [...m.buffer.read(m.offset, 4)],
          last: [...m.buffer.read(m.offset + m.size - 4, 4)],
          tier: m.buffer.tier,
          size: m.size,
        });
      }
      expect(refused).toEqual([]);
      expect({ eos: source.eos, end: source.endReason?.message }).toEqual({ eos: true, end: undefined });
    }
    expect(await gst.exited).toBe(0);
    expect(frames).toHaveLength(10);
    frames.forEach((fr, i) => {
      expect(fr).toMatchObject({ tier: 'memfd', size: 64 * 48 * 4, first: RGBA, last: RGBA, offset: BigInt(i), duration: expect.any(BigInt) });
      if (i > 0) expect(fr.pts! > frames[i - 1].pts!).toBe(true);
    });
    // pts are CLOCK_MONOTONIC ns (unixfdsink converts running time): near this process's clock
    const now = process.hrtime.bigint();
    expect(frames[0].pts! < now && now - frames[0].pts! < 60_000_000_000n).toBe(true);
    expect([...openFds()].filter((fd) => !before.has(fd))).toEqual([]);
  }, 60_000);

  test('a frame released goes back to GStreamer (its buffer pool reuses it: ids repeat); frames held are not reused', async () => {
    // Held: unixfdsink keeps every buffer for us, videotestsrc's pool must make new ones.
    const gst = launch(pipeline(12));
    await until(() => existsSync(dir.hostSocket), 'the sink socket');
    const held: UnixFdFrame[] = [];
    {
      using source = UnixFdSource.connect(dir.hostSocket);
      for (let f = await source.receive(); f; f = await source.receive()) held.push(f);
    }
    expect(await gst.exited).toBe(0);
    expect(new Set(held.map((f) => f.id)).size).toBe(12);
    for (const f of held) f.release();
    for (const f of held) expect(f.memories[0].buffer.closed).toBe(true);

    // Released at once: the pool gets them back and hands the same GstBuffers out again.
    const again = launch(pipeline(12));
    await until(() => existsSync(dir.hostSocket), 'the sink socket');
    const ids: bigint[] = [];
    {
      using source = UnixFdSource.connect(dir.hostSocket);
      for await (const f of source) {
        ids.push(f.id);
        f.release();
        f.release(); // once only: a second RELEASE_BUFFER would make unixfdsink drop us ("wrong id")
      }
      expect(source.endReason).toBeNull();
    }
    expect(await again.exited).toBe(0);
    expect(again.stderr()).not.toMatch(/wrong id/);
    expect(ids).toHaveLength(12);
    expect(new Set(ids).size).toBeLessThan(12);
  }, 60_000);

  test('a frame the program forgets is given back by the garbage collector, once: GStreamer reuses it', async () => {
    // live: a frame every 33 ms, so the collector has turns to run between frames (not live,
    // unixfdsink queues every frame in the socket before the first is read, and nothing could be reused)
    const gst = launch(pipeline(24, ['is-live=true']));
    await until(() => existsSync(dir.hostSocket), 'the sink socket');
    const ids: bigint[] = [];
    {
      using source = UnixFdSource.connect(dir.hostSocket);
      let n = 0;
      for await (const f of source) {
        ids.push(f.id); // never released by hand
        if (++n % 4 === 0) {
          (globalThis as { gc?: () => void }).gc?.();
          await new Promise((r) => setTimeout(r, 10)); // the finalizers run in a task of their own
        }
      }
    }
    expect(await gst.exited).toBe(0);
    expect(gst.stderr()).not.toMatch(/wrong id/);
    expect(new Set(ids).size).toBeLessThan(ids.length);
  }, 60_000);
});

describeIf(unavailable === null, unavailable ?? 'runs')('Node into GStreamer: UnixFdSink -> unixfdsrc ! filesink', () => {
  let dir: ReturnType<typeof gstSocketDir>;
  beforeEach(() => {
    dir = gstSocketDir(root!);
  });
  afterEach(() => rmSync(dir.host, { recursive: true, force: true }));

  /** where the real kernel has a system heap (the VM), buffers are dma-bufs (memory type 1) */
  const heapName = listHeaps().find((h) => h.name === 'system')?.name;

  async function runInto(caps: string, frames: number, planes: number[], fill: (frame: number, plane: number) => number) {
    const out = `${dir.inside}/out.raw`;
    using sink = UnixFdSink.listen(dir.hostSocket, { caps });
    // filesink writes at once (buffer-mode=unbuffered: by default it queues buffers, and a ring
    // of two would wait forever for them); like every basesink it keeps the last buffer it
    // rendered (enable-last-sample) until the next one comes: that one is back at EOS
    const gst = launch(['unixfdsrc', `socket-path=${dir.insideSocket}`, '!', 'filesink', 'buffer-mode=unbuffered', `location=${out}`]);
    await until(() => sink.clients === 1, 'unixfdsrc to connect');
    const total = planes.reduce((a, b) => a + b, 0);
    // one pool per plane, two buffers each: the ring only turns if GStreamer releases
    const heap = heapName ? openHeap(heapName) : null;
    const pools = planes.map((size) => (heap ? heap.createPool({ size, count: 2, max: 2 }) : createShareablePool({ size, count: 2, max: 2, tiers: ['memfd'] })));
    const back: Promise<void>[] = [];
    for (let n = 0; n < frames; n++) {
      const leases = await Promise.all(pools.map((p) => p.acquireAsync()));
      leases.forEach((l, p) => l.bytes().subarray(0, planes[p]).fill(fill(n, p)));
      back.push(sink.send({ memories: leases.map((l, p) => ({ buffer: l, size: planes[p] })), pts: process.hrtime.bigint(), offset: BigInt(n) }));
    }
    sink.eos();
    await Promise.all(back);
    expect(sink.pending).toBe(0);
    expect(await gst.exited).toBe(0);
    for (const p of pools) {
      expect(p.inUse).toBe(0);
      p.close();
    }
    heap?.close();
    const bytes = readFileSync(`${dir.host}/out.raw`);
    expect(bytes.length).toBe(frames * total);
    return { bytes, total, kind: heap ? 'dmabuf' : 'shm' };
  }

  test('one memory per buffer: 20 frames through a 2-buffer pool, every byte in the file', async () => {
    const { bytes } = await runInto('video/x-raw,format=GRAY8,width=64,height=64,framerate=30/1', 20, [4096], (n) => n + 1);
    for (let n = 0; n < 20; n++) expect(bytes.subarray(n * 4096, (n + 1) * 4096).every((b) => b === n + 1)).toBe(true);
  }, 60_000);

  test('three memories per buffer (I420 planes in their own buffers), in order', async () => {
    const planes = [64 * 64, 32 * 32, 32 * 32];
    const { bytes, total } = await runInto('video/x-raw,format=I420,width=64,height=64,framerate=30/1', 6, planes, (n, p) => 16 * n + p + 1);
    for (let n = 0; n < 6; n++) {
      let at = n * total;
      planes.forEach((size, p) => {
        expect(bytes.subarray(at, at + size).every((b) => b === 16 * n + p + 1)).toBe(true);
        at += size;
      });
    }
  }, 60_000);

  test('a unixfdsrc killed while it holds a buffer gives it back by going; sends with no client are back at once', async () => {
    using sink = UnixFdSink.listen(dir.hostSocket, { caps: 'video/x-raw,format=GRAY8,width=64,height=64' });
    using buf = allocShareable(4096, { tiers: ['memfd'] });
    await sink.send({ memories: [buf] }); // nobody connected: back at once, as unixfdsink drops it
    const gst = launch(['unixfdsrc', `socket-path=${dir.insideSocket}`, '!', 'fakesink']);
    await until(() => sink.clients === 1, 'unixfdsrc to connect');
    const back = sink.send({ memories: [buf] }); // fakesink keeps it as its last sample
    await new Promise((r) => setTimeout(r, 200));
    expect(sink.pending).toBe(1);
    gst.child.kill('SIGKILL');
    await back;
    expect(sink.pending).toBe(0);
    expect(sink.clients).toBe(0);
    expect(buf).toBeInstanceOf(DmaBuf);
  }, 60_000);
});

describeIf(unavailable === null, unavailable ?? 'runs')('a real V4L2 driver into Node: v4l2src io-mode=dmabuf ! unixfdsink (vivid, the VM rows)', () => {
  testWith('vivid')("vivid's own dma-bufs arrive as imported DmaBufs: caps with a DRM fourcc, the video meta's strides, bytes the CPU can read", async () => {
    const node = vividNodes().find((v) => /vid-cap/.test(v.name)) ?? vividNodes()[0];
    const dir = gstSocketDir(root!);
    try {
      const gst = launch(['v4l2src', `device=${node.path}`, 'io-mode=dmabuf', 'num-buffers=8', '!', 'unixfdsink', 'wait-for-connection=true', `socket-path=${dir.insideSocket}`]);
      await until(() => existsSync(dir.hostSocket), 'the sink socket', 60_000);
      const seen: { exporter: string; tier: string; size: number; stride: number | undefined }[] = [];
      let caps: string | null = null;
      {
        using source = UnixFdSource.connect(dir.hostSocket);
        for await (const frame of source) {
          using f = frame;
          expect(f.memoryType).toBe('dmabuf');
          const m = f.memories[0];
          // the CPU reads a V4L2 buffer through its dma-buf: SYNC around the read
          const head = m.buffer.cpuAccess('read', () => m.buffer.read(m.offset, 16));
          expect(head.length).toBe(16);
          seen.push({ exporter: m.buffer.info().exporter, tier: m.buffer.tier, size: m.size, stride: f.video?.planes[0]?.stride });
          caps = f.caps?.string ?? null;
          expect(f.caps).toMatchObject({ mediaType: 'video/x-raw', features: ['memory:DMABuf'], format: 'DMA_DRM', drmFormat: expect.stringMatching(/^[A-Z0-9]{4}/) });
        }
        expect({ eos: source.eos, end: source.endReason?.message }).toEqual({ eos: true, end: undefined });
      }
      expect(await gst.exited).toBe(0);
      expect(seen).toHaveLength(8);
      for (const s of seen) {
        expect(s).toMatchObject({ exporter: expect.stringMatching(/^videobuf2_/), tier: 'imported' });
        expect(s.stride).toBeGreaterThan(0);
        expect(s.size).toBeGreaterThan(0);
      }
      expect(caps).toMatch(/width=\(int\)\d+/);
    } finally {
      rmSync(dir.host, { recursive: true, force: true });
    }
  }, 120_000);
});

describeIf(unavailable === null, unavailable ?? 'runs')('a stage that waits: a device still writing a buffer Node sent (vgem, the VM rows)', () => {
  testWith('system', 'vgem')("unixfdsrc ! filesink reads a dma-buf only once vgem's write fence signals (DMA_BUF_IOCTL_SYNC waits for it)", async () => {
    const dir = gstSocketDir(root!);
    const vgem = await Vgem.open(loadAddon()!);
    try {
      using heap = openHeap('system');
      using buf = heap.alloc(4096);
      buf.cpuAccess('write', (bytes) => bytes.fill(0x7e));
      using sink = UnixFdSink.listen(dir.hostSocket, { caps: 'video/x-raw,format=GRAY8,width=64,height=64' });
      const gst = launch(['unixfdsrc', `socket-path=${dir.insideSocket}`, '!', 'filesink', 'buffer-mode=unbuffered', `location=${dir.inside}/out.raw`]);
      await until(() => sink.clients === 1, 'unixfdsrc to connect', 60_000);
      // the "GPU" is still writing: the buffer's reservation holds an unsignalled write fence
      const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
      let back = false;
      const sent = sink.send({ memories: [buf] }).then(() => (back = true));
      await new Promise((r) => setTimeout(r, 1500));
      const before = existsSync(`${dir.host}/out.raw`) ? readFileSync(`${dir.host}/out.raw`).length : 0;
      expect({ written: before, back }).toEqual({ written: 0, back: false });
      await vgem.signal(fence);
      sink.eos();
      await sent;
      expect(await gst.exited).toBe(0);
      const out = readFileSync(`${dir.host}/out.raw`);
      expect(out.length).toBe(4096);
      expect(out.every((b) => b === 0x7e)).toBe(true);
    } finally {
      await vgem.closed();
      rmSync(dir.host, { recursive: true, force: true });
    }
  }, 120_000);
});
