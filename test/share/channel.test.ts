import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import type { DmaBuf } from '../../lib/dmabuf';
import { openHeap } from '../../lib/heap';
import { DmaBufChannel, type ChannelMessage, type ChannelType } from '../../lib/share';
import { kernelRequired, newFds, openFds } from '../helpers/backends';
import { describeIf } from '../helpers/skip';
import { canShare, childByte, fill, holds, nextJson, parentByte, requireDist, runFixture, socketPath, warmUpSpawn } from './helpers';

const closedWith = (reason: string) => expect.objectContaining({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED', reason });

describeIf(canShare, 'sharing needs the native addon').each<ChannelType>(['seqpacket', 'stream'])('DmaBufChannel (%s)', (type) => {
  beforeAll(async () => {
    requireDist();
    await warmUpSpawn();
  });

  test('several buffers and a payload in one message: same memory, ino, sizes and names', async () => {
    using heap = openHeap('system');
    if (kernelRequired) expect(heap.backend).toBe('kernel');
    const page = heap.pageSize;
    const [a, b] = DmaBufChannel.pair({ type });
    using _a = a;
    using _b = b;
    using sent0 = heap.alloc(page, { name: 'y-plane' });
    using sent1 = heap.alloc(4 * page, { name: 'uv-plane' });
    using sent2 = heap.alloc(2 * page);
    [sent0, sent1, sent2].forEach((buf, i) => fill(buf.bytes(), i, parentByte));

    await a.send([sent0, sent1, sent2], { frame: 7, planes: ['y', 'uv', 'meta'], ts: 1.5 });
    const got = await b.receive();
    expect(got.payload).toEqual({ frame: 7, planes: ['y', 'uv', 'meta'], ts: 1.5 });
    expect(got.buffers.map((x) => [x.size, x.tier, x.info().name, x.info().ino])).toEqual(
      [sent0, sent1, sent2].map((x) => [x.size, x.tier, x.info().name, x.info().ino]),
    );
    got.buffers.forEach((buf, i) => {
      expect(holds(buf.bytes(), i, parentByte)).toBe(true);
      expect(buf.info().flags & 0o2000000).toBeTruthy(); // MSG_CMSG_CLOEXEC
      fill(buf.bytes(), i, childByte);
    });
    [sent0, sent1, sent2].forEach((buf, i) => expect(holds(buf.bytes(), i, childByte)).toBe(true));

    await a.send([]); // no buffers, no payload
    expect(await b.receive()).toEqual({ buffers: [], syncFiles: [], items: [], payload: undefined });
    for (const x of got.buffers) x.close();
    a.close();
    b.close();
  });

  test('many messages in flight: fds stay bound to their own frames, sends that fill the socket wait', async () => {
    using heap = openHeap('system');
    const page = heap.pageSize;
    const pool = Array.from({ length: 4 }, (_, i) => heap.alloc((i + 1) * page));
    const inos = pool.map((x) => x.info().ino);
    const before = openFds();
    const [a, b] = DmaBufChannel.pair<{ i: number; inos: number[] }, { i: number; inos: number[]; filler?: string }>({ type });
    const filler = 'x'.repeat(20000); // 60 of these overflow any socket buffer: EAGAIN, then writability
    const count = 60;
    const sends: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const k = i % 5;
      sends.push(a.send(pool.slice(0, k), { i, inos: inos.slice(0, k), filler }));
    }
    // Queued behind the others, and closed by its owner at once: the channel holds its own reference.
    const late = heap.alloc(page);
    const lateIno = late.info().ino;
    sends.push(a.send([late], { i: count, inos: [lateIno] }));
    late.close();

    const got: ChannelMessage<{ i: number; inos: number[] }>[] = [];
    for (let i = 0; i <= count; i++) got.push(await b.receive());
    await Promise.all(sends);
    got.forEach((m, i) => {
      expect(m.payload.i).toBe(i);
      expect(m.buffers.map((x) => x.info().ino)).toEqual(m.payload.inos);
    });
    for (const m of got) for (const x of m.buffers) x.close();
    a.close();
    b.close();
    expect(newFds(before)).toEqual([]);
    for (const x of pool) x.close();
  });

  test('send() refuses what it cannot frame, and nothing reaches the peer', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    const [a, b] = DmaBufChannel.pair({ type, maxPayload: 1024 });
    using _a = a;
    using _b = b;
    await expect(a.send([{ fd: buf.fd } as unknown as DmaBuf])).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(a.send([buf], 'x'.repeat(2000))).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(a.send([buf], { n: 1n })).rejects.toThrow(TypeError); // JSON has no bigint
    const closedBuf = heap.alloc(heap.pageSize);
    closedBuf.close();
    await expect(a.send([closedBuf])).rejects.toMatchObject({ code: 'ERR_DMA_BUF_CLOSED' });
    await a.send([], 'only this');
    expect((await b.receive()).payload).toBe('only this');
  });

  test('listen and connect fail like the syscalls, leaving no fd behind', () => {
    const path = socketPath(type);
    const before = openFds();
    expect(() => DmaBufChannel.connect(path, { type })).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'connect' }));
    {
      using server = DmaBufChannel.listen(path, { type });
      expect(() => DmaBufChannel.listen(path, { type })).toThrow(expect.objectContaining({ code: 'EADDRINUSE', syscall: 'bind' }));
      const other = type === 'stream' ? 'seqpacket' : 'stream';
      expect(() => DmaBufChannel.connect(path, { type: other })).toThrow(expect.objectContaining({ syscall: 'connect' }));
      expect(server.closed).toBe(false);
    }
    expect(existsSync(path)).toBe(false);
    expect(newFds(before)).toEqual([]);
  });

  test("close() and the peer's end: pending receives reject with a typed error, iteration ends", async () => {
    const [a, b] = DmaBufChannel.pair({ type });
    const mine = a.receive();
    a.close();
    await expect(mine).rejects.toEqual(closedWith('closed'));
    await expect(b.receive()).rejects.toEqual(closedWith('peerClosed'));
    await expect(b.send([], 'late')).rejects.toEqual(closedWith('peerClosed'));
    expect(b.closed).toBe(true);

    const [c, d] = DmaBufChannel.pair({ type });
    await c.send([], 1);
    await c.send([], 2);
    c.close();
    const payloads: unknown[] = [];
    for await (const m of d) payloads.push(m.payload);
    expect(payloads).toEqual([1, 2]);
  });

  test('a separate process connected over a socket path maps the buffers and sends one back', async () => {
    using heap = openHeap('system');
    const page = heap.pageSize;
    using a = heap.alloc(page, { name: 'to-child' });
    using b = heap.alloc(2 * page);
    fill(a.bytes(), 0, parentByte);
    fill(b.bytes(), 1, parentByte);
    const path = socketPath(type);
    using server = DmaBufChannel.listen(path, { type });
    const connection = once(server, 'connection') as Promise<[DmaBufChannel<any>]>; // the child's echo, as it writes it
    const run = runFixture(spawn, 'child-channel.js', ['echo', type, path]);
    const [conn] = await Promise.race([connection, run.closed.then((e) => Promise.reject(new Error(`the child ended (${JSON.stringify(e)}) before connecting`)))]);
    using channel = conn;

    await channel.send([a, b], { replySize: 3 * page, note: 'hi' });
    const reply = await channel.receive();
    expect(await run.closed).toEqual({ code: 0, signal: null });
    expect(reply.payload.payload).toEqual({ replySize: 3 * page, note: 'hi' });
    expect(reply.payload.seen).toEqual([
      { size: page, tier: a.tier, ino: a.info().ino, name: 'to-child', cloexec: true, sawParent: true },
      { size: 2 * page, tier: b.tier, ino: b.info().ino, cloexec: true, sawParent: true },
    ]);
    expect(holds(a.bytes(), 0, childByte)).toBe(true);
    expect(holds(b.bytes(), 1, childByte)).toBe(true);

    // The child's own buffer outlives the child: the message held a reference.
    const [theirs] = reply.buffers as DmaBuf[];
    expect(reply.payload.mine.backend).toBe(heap.backend);
    expect(theirs.info()).toMatchObject({ ino: reply.payload.mine.ino, size: 3 * page, name: 'from-child' });
    expect(holds(theirs.bytes(), 0, childByte)).toBe(true);
    theirs.close();

    await expect(channel.receive()).rejects.toEqual(closedWith('peerClosed'));
    server.close();
    expect(existsSync(path)).toBe(false);
  });

  test('pair() for forking: one end given to a child through stdio', async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(heap.pageSize);
    fill(buf.bytes(), 0, parentByte);
    const [mine, theirs] = DmaBufChannel.pair<any>({ type }); // the child's echo, as it writes it
    using _mine = mine;
    const run = runFixture(spawn, 'child-channel.js', ['echo', type, 'fd3'], ['ignore', 'pipe', 'inherit', theirs.fd]);
    theirs.close();
    await mine.send([buf], { replySize: heap.pageSize });
    const reply = await mine.receive();
    expect(await run.closed).toEqual({ code: 0, signal: null });
    expect(reply.payload.seen[0]).toMatchObject({ ino: buf.info().ino, sawParent: true });
    expect(holds(buf.bytes(), 0, childByte)).toBe(true);
    for (const x of reply.buffers) x.close();
    mine.close();
  });

  test("a receiver killed (SIGKILL) mid-use: the sender's buffer is intact, its receive rejects, no fd leaks", async () => {
    using heap = openHeap('system');
    using buf = heap.alloc(2 * heap.pageSize);
    fill(buf.bytes(), 0, parentByte);
    const before = openFds();
    const path = socketPath(type);
    using server = DmaBufChannel.listen(path, { type });
    const connection = once(server, 'connection') as Promise<[DmaBufChannel]>;
    const run = runFixture(spawn, 'child-channel.js', ['hold', type, path]);
    const [conn] = await Promise.race([connection, run.closed.then((e) => Promise.reject(new Error(`the child ended (${JSON.stringify(e)}) before connecting`)))]);
    using channel = conn;
    await channel.send([buf], { job: 1 });
    const report = await nextJson(run.lines);
    expect(report.seen[0]).toMatchObject({ ino: buf.info().ino, sawParent: true });

    const pending = channel.receive();
    run.child.kill('SIGKILL');
    await expect(pending).rejects.toEqual(closedWith('peerClosed'));
    expect(await run.closed).toEqual({ code: null, signal: 'SIGKILL' });
    expect(channel.closed).toBe(true);
    server.close();

    expect(holds(buf.bytes(), 0, childByte)).toBe(true);
    buf.write(Buffer.from('still mine'));
    expect(buf.read(0, 10).toString()).toBe('still mine');
    expect(newFds(before)).toEqual([]);
  });
});
