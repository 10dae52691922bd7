/**
 * Lending (issue 20 item 3): channel.lend() and the receiver's release(), between processes and
 * within one, on both socket types: a pool's leases cycle through a consumer with no ack of the
 * application's, come back by release(), `using` or the garbage collector, all come back when the
 * channel ends, and a hostile peer's releases are refused without anything returned twice.
 */
import { spawn } from 'node:child_process';
import type { Addon } from '../../lib/native/addon';
import { loadAddon } from '../../lib/native/load';
import type { DmaBuf } from '../../lib/dmabuf';
import { openHeap } from '../../lib/heap';
import { DmaBufChannel, type ChannelMessage, type ChannelType, type DmaBufChannelError, type LendResult } from '../../lib/share';
import { gcUntil, newFds, settledFds, tick } from '../helpers/fds';
import { describeIf } from '../helpers/skip';
import { canShare, nextJson, requireDist, runFixture, warmUpSpawn } from './helpers';

type Frame = { frame: number; byte: number };

/** A frame as lib/share/frame.ts lays it out (written again here: the tests pin the format). */
function frame(body: unknown, opts: { flags?: number; fdCount?: number } = {}): Buffer {
  const json = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const out = Buffer.alloc(12 + json.length);
  out.writeUInt32LE(0x42414d44, 0); // 'DMAB'
  out[4] = 1; // version
  out[5] = opts.flags ?? 0;
  out.writeUInt16LE(opts.fdCount ?? 0, 6);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 12);
  return out;
}
const LENT = 0x01;
const RELEASE = 0x02;

const refusedAs = (reason: string) => expect.objectContaining({ name: 'DmaBufChannelError', code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason });

/** the next 'refused' event of a channel */
const nextRefusal = (channel: DmaBufChannel<any, any>) => new Promise<DmaBufChannelError>((resolve) => channel.once('refused', resolve));

/** whether a promise settled yet (after the event loop turned) */
async function settled<T>(p: Promise<T>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await tick();
  await tick();
  return done;
}

describeIf(canShare, 'sharing needs the native addon').each<ChannelType>(['seqpacket', 'stream'])('channel.lend (%s)', (type) => {
  beforeAll(async () => {
    requireDist();
    await warmUpSpawn();
  });

  test.each(['release', 'gc'])('a 2-buffer pool cycles 100 frames through a child consumer (%s): the pool is the backpressure, no fd leaks', async (mode) => {
    using heap = openHeap('system');
    const page = heap.pageSize;
    const before = await settledFds();
    {
      using pool = heap.createPool({ size: 2 * page, count: 2 });
      const [mine, theirs] = DmaBufChannel.pair<never, Frame>({ type });
      using channel = mine;
      const args = mode === 'gc' ? ['--expose-gc'] : [];
      const run = runFixture((cmd, a, o) => spawn(cmd, [...args, ...a], o), 'child-lend.js', [mode, type], ['ignore', 'pipe', 'inherit', theirs.fd]);
      theirs.close();
      const backs: Promise<LendResult>[] = [];
      let most = 0;
      for (let i = 0; i < 100; i++) {
        const lease = await pool.acquireAsync();
        lease.buffer.cpuAccess('write', () => lease.bytes().fill(i & 0xff));
        backs.push(channel.lend([lease], { frame: i, byte: i & 0xff }));
        most = Math.max(most, pool.stats().total);
      }
      // a loop's variable holds its last message while it waits for the next (V8 keeps it): by
      // GC, the last frame comes back when the loop ends, that is when the channel does
      const last = mode === 'gc' ? backs.pop()! : null;
      expect(await Promise.all(backs)).toEqual(Array(backs.length).fill('released'));
      expect(most).toBe(2);
      channel.close();
      if (last) expect(['released', 'closed']).toContain(await last);
      expect(pool.stats()).toMatchObject({ inUse: 0, idle: 2, total: 2 });
      expect(await nextJson(run.lines)).toEqual({ frames: 100, lent: 100, inos: 2, bad: 0, end: 'peerClosed' });
      expect(await run.closed).toEqual({ code: 0, signal: null });
    }
    expect(newFds(before)).toEqual([]);
  }, 60_000);

  test('release(): the lender learns "released", a lease goes back to its pool, release is once only', async () => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 1 });
    const [a, b] = DmaBufChannel.pair<{ n: number }>({ type });
    using _a = a;
    using _b = b;
    const lease = pool.acquire();
    const back = a.lend([lease], { n: 1 });
    expect(pool.stats().inUse).toBe(1);
    const m = await b.receive();
    expect(m).toMatchObject({ lent: true, released: false, payload: { n: 1 } });
    const [buf] = m.buffers;
    expect(await settled(back)).toBe(false);
    expect(pool.stats().inUse).toBe(1); // out with the receiver: the producer can't take it again
    expect(m.release()).toBe(true);
    expect(m.released).toBe(true);
    expect(buf.closed).toBe(true); // the receiver's views are gone
    expect(m.release()).toBe(false);
    m[Symbol.dispose]();
    expect(await back).toBe('released');
    expect(lease.released).toBe(true);
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1 });
  });

  test('using releases; `for await (using ...)` releases each message as the loop moves on', async () => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 2 });
    const [a, b] = DmaBufChannel.pair<{ n: number }>({ type });
    using _a = a;
    using _b = b;
    const first = a.lend([pool.acquire()], { n: 0 });
    {
      using m = await b.receive();
      expect(m.lent).toBe(true);
    }
    expect(await first).toBe('released');

    const producing = (async () => {
      const results: LendResult[] = [];
      for (let n = 1; n <= 10; n++) results.push(await a.lend([await pool.acquireAsync()], { n }).then((r) => r));
      return results;
    })();
    const seen: number[] = [];
    const consuming = (async () => {
      for await (using m of b) {
        seen.push(m.payload.n);
        if (m.payload.n === 10) break;
      }
    })();
    expect(await producing).toEqual(Array(10).fill('released'));
    await consuming;
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(pool.stats().inUse).toBe(0);
  });

  test('the garbage collector releases a lent message no one holds; one of its buffers kept keeps the loan', async () => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 2 });
    const [a, b] = DmaBufChannel.pair<{ n: number }>({ type });
    using _a = a;
    using _b = b;
    let released1 = false;
    const back1 = a.lend([pool.acquire()], { n: 1 }).then((r) => ((released1 = true), r));
    let released2 = false;
    const back2 = a.lend([pool.acquire()], { n: 2 }).then((r) => ((released2 = true), r));
    // receive in a function of their own: nothing on this frame holds the messages
    let kept: DmaBuf | null = await (async () => {
      await b.receive(); // dropped
      const m = await b.receive();
      return m.buffers[0]; // the message is dropped, its buffer kept
    })();
    expect(await gcUntil(() => released1)).toBe(true);
    expect(await back1).toBe('released');
    expect(await gcUntil(() => released2, 5)).toBe(false); // its buffer is reachable: the loan too
    expect(kept.closed).toBe(false);
    kept.close(); // closing it releases nothing: the message does, once unreachable
    expect(await gcUntil(() => released2, 3)).toBe(false);
    kept = null;
    expect(await gcUntil(() => released2)).toBe(true);
    expect(await back2).toBe('released');
    expect(pool.stats().inUse).toBe(0);
  });

  test('the channel ending returns every outstanding lease: "closed" on either side closing', async () => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 3 });
    for (const who of ['lender', 'receiver'] as const) {
      const [a, b] = DmaBufChannel.pair({ type });
      const backs = [a.lend([pool.acquire()]), a.lend([pool.acquire()]), a.lend([pool.acquire()])];
      const held = [await b.receive(), await b.receive()]; // the third never received
      expect(pool.stats().inUse).toBe(3);
      (who === 'lender' ? a : b).close();
      expect(await Promise.all(backs)).toEqual(['closed', 'closed', 'closed']);
      expect(pool.stats()).toMatchObject({ inUse: 0, idle: 3 });
      for (const m of held) expect(m.release()).toBe(true); // nothing to send any more: no throw
      a.close();
      b.close();
    }
    // lending on a channel already closed: 'closed', the lease back at once
    const [a, b] = DmaBufChannel.pair({ type });
    a.close();
    b.close();
    const lease = pool.acquire();
    expect(await a.lend([lease])).toBe('closed');
    expect(lease.released).toBe(true);
  });

  test('plain send() messages have the same release(): closes the items, sends nothing; lent is false', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    const [a, b] = DmaBufChannel.pair({ type });
    using _a = a;
    using _b = b;
    await a.send([buf], 'plain');
    const m = await b.receive();
    expect(m).toMatchObject({ lent: false, released: false, payload: 'plain' });
    const [got] = m.buffers;
    m.items.length = 0; // the program's array: release() still closes what came
    expect(m.release()).toBe(true);
    expect(got.closed).toBe(true);
    expect(m.release()).toBe(false);
    expect(buf.closed).toBe(false);
  });

  test('a lent DmaBuf stays the caller\'s; the lender still reads its releases while not receiving, and a message that comes meanwhile waits for receive()', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    const [a, b] = DmaBufChannel.pair<string>({ type });
    using _a = a;
    using _b = b;
    const back = a.lend([buf], 'lent');
    const m = await b.receive();
    await b.send([], 'hello'); // a message the lender is not receiving yet
    m.release();
    // the lender reads for its release; the message it meets first is kept for receive()
    expect(await settled(back)).toBe(false);
    expect((await a.receive()).payload).toBe('hello');
    expect(await back).toBe('released');
    expect(buf.closed).toBe(false);
  });

  test('lend() validates like send(): a released lease, a bad item or payload reject, and every lease goes back', async () => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 2 });
    const [a, b] = DmaBufChannel.pair({ type });
    using _a = a;
    using _b = b;
    const gone = pool.acquire();
    gone.release();
    const live = pool.acquire();
    await expect(a.lend([live, gone])).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_POOL_RELEASED' });
    expect(live.released).toBe(true);
    await expect(a.lend('x' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    const again = pool.acquire();
    await expect(a.lend([again, {} as never])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(a.lend([pool.acquire()], 10n as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(pool.stats().inUse).toBe(0);
  });
});

/** Release frames and lent frames crafted with the raw addon calls on one end; a DmaBufChannel on the other. */
describeIf(canShare, 'sharing needs the native addon').each<ChannelType>(['seqpacket', 'stream'])('a hostile peer and lending (%s)', (type) => {
  let addon: Addon;
  let raw = -1;
  let channel: DmaBufChannel<unknown, unknown>;

  beforeEach(() => {
    pending = Buffer.alloc(0);
    pendingFds = [];
    addon = loadAddon()!;
    const [r, end] = addon.socketpair(type === 'stream' ? addon.abi.SOCK_STREAM : addon.abi.SOCK_SEQPACKET);
    raw = r;
    channel = DmaBufChannel.fromFd(end, { type, maxFds: 4, maxPayload: 1 << 16, dup: false });
  });

  afterEach(() => {
    channel.close();
    if (raw >= 0) addon.close(raw);
    raw = -1;
  });

  let pending = Buffer.alloc(0);
  let pendingFds: number[] = [];

  /** the next whole frame the raw end receives (a stream's reads are split into frames here) */
  async function readFrame(): Promise<{ flags: number; fds: number[]; body: any }> {
    for (let i = 0; i < 200; i++) {
      if (pending.length >= 12 && pending.length >= 12 + pending.readUInt32LE(8)) {
        const length = pending.readUInt32LE(8);
        const out = { flags: pending[5], fds: pendingFds, body: JSON.parse(pending.subarray(12, 12 + length).toString()) };
        pending = pending.subarray(12 + length);
        pendingFds = [];
        return out;
      }
      try {
        const r = addon.recvFds(raw, 1 << 16, 8);
        pending = Buffer.concat([pending, r.payload]);
        pendingFds.push(...r.fds);
        continue;
      } catch (err) {
        if ((err as { code?: string }).code !== 'EAGAIN') throw err;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error('nothing arrived');
  }

  test('releases for an id never lent, and one released twice: refused as events, nothing goes back twice, the channel carries on', async () => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 2 });
    const before = await settledFds();
    const back = channel.lend([pool.acquire()], 'x');
    const lent = await readFrame();
    expect(lent.flags).toBe(LENT);
    expect(lent.body).toEqual({ buffers: [expect.objectContaining({ size: heap.pageSize })], lend: expect.any(Number), payload: 'x' });
    for (const fd of lent.fds) addon.close(fd);
    const id: number = lent.body.lend;
    const second = channel.lend([pool.acquire()], 'y');
    const lent2 = await readFrame();
    for (const fd of lent2.fds) addon.close(fd);

    let refusal = nextRefusal(channel);
    addon.sendFds(raw, frame({ release: [id + 1000] }, { flags: RELEASE }), []);
    expect(await refusal).toEqual(refusedAs('unknownLoan'));
    expect(await settled(back)).toBe(false);

    addon.sendFds(raw, frame({ release: [id] }, { flags: RELEASE }), []);
    expect(await back).toBe('released');
    expect(pool.stats().inUse).toBe(1);

    refusal = nextRefusal(channel);
    addon.sendFds(raw, frame({ release: [id, id] }, { flags: RELEASE }), []);
    const err = await refusal;
    expect(err).toEqual(refusedAs('unknownLoan'));
    expect(err.message).toMatch(new RegExp(`\\b${id}, ${id}\\b`));
    expect(pool.stats()).toMatchObject({ inUse: 1, idle: 1 }); // nothing went back twice
    expect(await settled(second)).toBe(false);
    addon.sendFds(raw, frame({ release: [lent2.body.lend] }, { flags: RELEASE }), []);
    expect(await second).toBe('released');
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 2 });
    expect(newFds(before)).toEqual([]);
  });

  test.each([
    ['carrying fds', { release: [1] }, 2, 'badRelease'],
    ['a huge list', { release: Array.from({ length: 1025 }, (_, i) => i + 1) }, 0, 'badRelease'],
    ['an empty list', { release: [] }, 0, 'badRelease'],
    ['ids that are not u32 integers', { release: [1.5, -1, 2 ** 32] }, 0, 'badRelease'],
    ['no list', { buffers: [] }, 0, 'badRelease'],
    ['not JSON', '{"release":[1', 0, 'badRelease'],
  ])('a release %s is refused (%#), its fds closed, the loan still out; the channel carries on', async (_what, body, nfds, reason) => {
    using heap = openHeap('system');
    using pool = heap.createPool({ size: heap.pageSize, count: 1 });
    const back = channel.lend([pool.acquire()]);
    const lent = await readFrame();
    for (const fd of lent.fds) addon.close(fd);
    const before = await settledFds();
    const extra = Array.from({ length: nfds }, () => heap.alloc(heap.pageSize));
    const refusal = nextRefusal(channel);
    addon.sendFds(raw, frame(body, { flags: RELEASE, fdCount: nfds }), extra.map((x) => x.fd));
    for (const x of extra) x.close();
    expect(await refusal).toEqual(refusedAs(reason));
    expect(newFds(before)).toEqual([]);
    expect(await settled(back)).toBe(false);
    expect(pool.stats().inUse).toBe(1);
    addon.sendFds(raw, frame({ release: [lent.body.lend] }, { flags: RELEASE }), []);
    expect(await back).toBe('released');
  });

  test('a lend id reused while its message is out: refused (loanReused), its fds closed, nothing released for it; the first loan still releases', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    const meta = { size: buf.size, tier: buf.tier };
    addon.sendFds(raw, frame({ buffers: [meta], lend: 7, payload: 'first' }, { flags: LENT, fdCount: 1 }), [buf.fd]);
    const first = await channel.receive();
    expect(first).toMatchObject({ lent: true, payload: 'first' });
    const before = await settledFds();
    addon.sendFds(raw, frame({ buffers: [meta], lend: 7, payload: 'again' }, { flags: LENT, fdCount: 1 }), [buf.fd]);
    await expect(channel.receive()).rejects.toEqual(refusedAs('loanReused'));
    expect(newFds(before)).toEqual([]);
    first.release();
    expect(await readFrame()).toEqual({ flags: RELEASE, fds: [], body: { release: [7] } });
    // released, the id may be lent again
    addon.sendFds(raw, frame({ buffers: [meta], lend: 7, payload: 'third' }, { flags: LENT, fdCount: 1 }), [buf.fd]);
    const third = await channel.receive();
    expect(third.payload).toBe('third');
    third.release();
    expect((await readFrame()).body).toEqual({ release: [7] });
  });

  test('a lent message refused for its fds (a pipe as a dma-buf, a wrong count) is released at once: the lender gets its buffers back', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    const before = await settledFds();
    addon.sendFds(raw, frame({ buffers: [{ size: buf.size, tier: buf.tier }], lend: 9 }, { flags: LENT, fdCount: 2 }), [buf.fd]);
    await expect(channel.receive()).rejects.toEqual(refusedAs('fdCount'));
    expect(await readFrame()).toEqual({ flags: RELEASE, fds: [], body: { release: [9] } });
    addon.sendFds(raw, frame({ buffers: [{ size: buf.size + 1, tier: buf.tier }], lend: 10 }, { flags: LENT, fdCount: 1 }), [buf.fd]);
    await expect(channel.receive()).rejects.toEqual(refusedAs('malformed'));
    expect((await readFrame()).body).toEqual({ release: [10] });
    // a lent frame without a usable id: refused, nothing to release
    addon.sendFds(raw, frame({ buffers: [], lend: 0 }, { flags: LENT }), []);
    await expect(channel.receive()).rejects.toEqual(refusedAs('malformed'));
    expect(newFds(before)).toEqual([]);
  });

  test('releases made together go in one frame (GC bursts, a loop of release())', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    const meta = { size: buf.size, tier: buf.tier };
    const got: ChannelMessage[] = [];
    for (let id = 1; id <= 3; id++) {
      addon.sendFds(raw, frame({ buffers: [meta], lend: id }, { flags: LENT, fdCount: 1 }), [buf.fd]);
      got.push(await channel.receive());
    }
    // the first goes at once; the others join one frame only while it waits, so: at most 3 frames, every id once
    for (const m of got) m.release();
    const ids: number[] = [];
    while (ids.length < 3) ids.push(...(await readFrame()).body.release);
    expect(ids.sort()).toEqual([1, 2, 3]);
  });
});

describeIf(!canShare, 'the addon is loaded, so channels exist')('lending without the addon', () => {
  test('no channel to lend on: DmaBufChannel.pair() throws ERR_DMA_HEAP_NO_ADDON', () => {
    expect(() => DmaBufChannel.pair()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_ADDON' }));
  });
});
