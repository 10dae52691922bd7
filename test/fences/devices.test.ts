// Fences and devices on a real kernel: vgem plays a GPU writing/reading our buffers, vivid a
// camera capturing into them. Rows of the VM rig that declare vgem/vivid in DMA_HEAP_EXPECT
// (npm run test:kernel) FAIL here when the device is missing; elsewhere these skip, saying why.
// The framework's side of the same scenarios is in test/differential.test.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { DmaBuf, DmaBufChannel, type Heap, openHeap, spawnWithBuffers, SyncFile } from '../../lib';
import { loadAddon } from '../../lib/native/load';
import { Vgem, vividCapture, vividProbe, vividVmallocNode } from '../devices/devices';
import { describeWith } from '../helpers/expect';

// one heap for the file, opened on first use (rows without the devices never open it)
let heap: Heap | undefined;
const alloc = (size = 65536): DmaBuf => (heap ??= openHeap('system', { backend: 'kernel' })).alloc(size);
afterAll(() => heap?.close());

function ticking(): { count: () => number; stop: () => void } {
  let n = 0;
  const t = setInterval(() => n++, 1);
  return { count: () => n, stop: () => clearInterval(t) };
}
const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 1));
};

/**
 * A child holding a sync_file of a vgem fence: once it prints its first line, signal the fence.
 * vgem expires a fence 10 s after attaching it (signal then answers ETIMEDOUT, the fence is
 * signalled all the same); a slow TCG guest may need that long to start node.
 */
async function signalOnceChildSpeaks(child: ChildProcess, vgem: Vgem, fence: number): Promise<{ lines: string[]; exited: Promise<unknown> }> {
  const lines: string[] = [];
  child.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n')));
  const exited = new Promise((r) => child.on('exit', r));
  await until(() => lines.length >= 1);
  await vgem.signal(fence).catch((e: { errno?: number }) => {
    if (e.errno !== 110) throw e;
  });
  return { lines, exited };
}

describeWith('system', 'vgem')('vgem plays a GPU', () => {
  let vgem: Vgem;
  beforeEach(async () => {
    vgem = await Vgem.open(loadAddon()!);
  });
  afterEach(() => vgem.closed());

  test('idle() resolves only after the device signals, while a timer keeps ticking', async () => {
    using buf = alloc();
    expect(buf.tier).toBe('dma-heap');
    const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
    const timer = ticking();
    let signalled = false;
    let resolvedBeforeSignal = false;
    const idle = buf.idle('read').then(() => (resolvedBeforeSignal = !signalled));
    await until(() => timer.count() >= 5);
    signalled = true;
    await vgem.signal(fence);
    await idle;
    timer.stop();
    expect(resolvedBeforeSignal).toBe(false);
  });

  test('idle() resolves at once with nothing pending; abort and timeout end a wait', async () => {
    using buf = alloc();
    let done = false;
    void buf.idle().then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(true);
    const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
    const ac = new AbortController();
    const p = buf.idle('read', { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    await expect(buf.idle('write', { timeout: 20 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    await vgem.signal(fence);
    await buf.idle('write');
  });

  test('cpuAccessAsync() waits for the device without blocking the loop', async () => {
    using buf = alloc();
    const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
    const timer = ticking();
    let ran = false;
    const p = buf.cpuAccessAsync('read', (bytes) => {
      ran = true;
      return bytes.length;
    });
    await until(() => timer.count() >= 5);
    expect(ran).toBe(false); // the loop ran 5 timer ticks while the fence was pending
    await vgem.signal(fence);
    await expect(p).resolves.toBe(buf.size);
    timer.stop();
  });

  test('sync_file export and import round-trip through a second buffer', async () => {
    using a = alloc();
    using b = alloc(4096);
    const fence = await vgem.attach(await vgem.import(a.fd), 'write');
    using sf = a.exportSyncFile('read');
    expect(sf.info()).toMatchObject({ status: 'active', numFences: 1, name: expect.stringMatching(/^vgem-unbound\d+-1$/) });
    b.importSyncFile(sf, 'write');
    const waits = [sf.wait(), b.idle('read')];
    await vgem.signal(fence);
    await Promise.all(waits);
    expect(sf.status).toBe('signaled');
    using adopted = SyncFile.fromFd(sf.fd);
    expect(adopted.status).toBe('signaled');
    expect(() => SyncFile.fromFd(a.fd)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  test('a sync_file passes to a child like any fd: the child holds the same fence and sees it signal', async () => {
    using buf = alloc();
    const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
    using sf = buf.exportSyncFile('read');
    const name = sf.info().name; // "vgem-unbound<context>-1": names this very fence
    const dist = require.resolve('../../dist/index.js');
    const script = `const { SyncFile } = require(${JSON.stringify(dist)});
      const sf = SyncFile.fromFd(3, { dup: false });
      console.log(sf.info().name);
      sf.wait().then(() => { console.log(sf.status); sf.close(); });`;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit', sf.fd] });
    const { lines, exited } = await signalOnceChildSpeaks(child, vgem, fence);
    expect({ code: await exited, lines }).toEqual({ code: 0, lines: [name, 'signaled'] });
  });

  test('a sync_file sent over a DmaBufChannel beside its buffer: the receiver waits for the signal', async () => {
    const [a, b] = DmaBufChannel.pair();
    try {
      using buf = alloc();
      const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
      using sf = buf.exportSyncFile('read');
      await a.send([buf, sf], 'frame 1');
      const m = await b.receive();
      expect(m.items.map((i) => (i instanceof SyncFile ? 'sync-file' : 'dma-buf'))).toEqual(['dma-buf', 'sync-file']);
      expect(m.buffers).toEqual([m.items[0]]);
      expect(m.syncFiles).toEqual([m.items[1]]);
      const got = m.syncFiles[0];
      expect(got.fd).not.toBe(sf.fd);
      expect(got.info()).toMatchObject({ name: sf.info().name, status: 'active' });
      let signalled = false;
      let resolvedBeforeSignal = false;
      const waited = got.wait().then(() => (resolvedBeforeSignal = !signalled));
      const timer = ticking();
      await until(() => timer.count() >= 5);
      timer.stop();
      signalled = true;
      await vgem.signal(fence);
      await waited;
      expect(resolvedBeforeSignal).toBe(false);
      expect(got.status).toBe('signaled');
      for (const i of m.items) i.close();
    } finally {
      a.close();
      b.close();
    }
  });

  test('a sync_file given to a child by spawnWithBuffers: inheritedItems() waits for the same fence', async () => {
    using buf = alloc();
    const fence = await vgem.attach(await vgem.import(buf.fd), 'write');
    using sf = buf.exportSyncFile('read');
    const name = sf.info().name;
    const fixture = require.resolve('../share/fixtures/child-items.js');
    const child = spawnWithBuffers(process.execPath, [fixture], [buf, sf], { stdio: ['ignore', 'pipe', 'inherit'] });
    const { lines, exited } = await signalOnceChildSpeaks(child, vgem, fence);
    expect({ code: await exited, lines: lines.map((l) => JSON.parse(l)) }).toEqual({
      code: 0,
      lines: [{ kinds: ['dma-buf', 'sync-file'], names: [name] }, { statuses: ['signaled'] }],
    });
  });

  test('a buffer exported by drm is adopted as an imported buffer, exporter drm', async () => {
    const fd = await vgem.dumb(8192);
    using buf = DmaBuf.fromFd(fd, { dup: false });
    expect(buf.tier).toBe('imported');
    expect(buf.exporter).toBe('drm');
    expect(buf.isDmaBuf).toBe(true);
    await buf.idle();
  });
});

describeWith('system', 'vivid')('vivid captures into our buffers', () => {
  test('vivid captures frames into our buffers; read back through map() in a read bracket', async () => {
    const device = vividVmallocNode();
    expect(device).toBeDefined();
    const format = vividProbe(320, 240, device);
    const bufs = [alloc(format.sizeImage), alloc(format.sizeImage)];
    try {
      for (const b of bufs) b.bytes().fill(0xaa);
      const { frames } = await vividCapture(bufs.map((b) => b.fd), format.width, format.height, 4, device);
      // vivid counts frames it had no buffer for (TCG is slow): sequences rise, gaps allowed
      expect(frames).toHaveLength(4);
      for (let i = 1; i < frames.length; i++) expect(frames[i].sequence).toBeGreaterThan(frames[i - 1].sequence);
      for (const f of frames) expect(f.bytesUsed).toBe(format.sizeImage);
      for (const b of bufs) {
        const untouched = await b.cpuAccessAsync('read', () => {
          const view = new Uint8Array(b.map(), 0, format.sizeImage);
          return view.filter((x) => x === 0xaa).length;
        });
        // vivid's test pattern is YUYV colour bars: a device wrote (nearly) every byte
        expect(untouched).toBeLessThan(format.sizeImage / 100);
      }
    } finally {
      for (const b of bufs) b.close();
    }
  });
});
