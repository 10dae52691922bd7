import { execFileSync } from 'node:child_process';
import { closeSync, constants, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Addon } from '../../lib/native/addon';
import type { DmaBuf } from '../../lib/dmabuf';
import type { Heap } from '../../lib/heap';
import { loadAddon } from '../../lib/native/load';
import { openHeap } from '../../lib/heap';
import { DmaBufChannel, type ChannelType } from '../../lib/share';
import { newFds, openFds } from '../helpers/backends';
import { describeIf } from '../helpers/skip';
import { canShare } from './helpers';

/** A frame as lib/share/ lays it out (written again here: the tests pin the format). */
function frame(fdCount: number, body: unknown, edit: { magic?: number; length?: number } = {}): Buffer {
  const json = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const out = Buffer.alloc(12 + json.length);
  out.writeUInt32LE(edit.magic ?? 0x42414d44, 0); // 'DMAB'
  out[4] = 1; // version
  out.writeUInt16LE(fdCount, 6);
  out.writeUInt32LE(edit.length ?? json.length, 8);
  json.copy(out, 12);
  return out;
}

const meta = (buf: DmaBuf) => ({ size: buf.size, tier: buf.tier });
const refused = (reason: string) =>
  expect.objectContaining({ name: 'DmaBufChannelError', code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason, message: expect.stringMatching(/^bad message refused/) });
const closedWith = (reason: string) => expect.objectContaining({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED', reason });

/** Messages crafted with the raw addon calls on one end; a DmaBufChannel (maxFds 4, maxPayload 1024) on the other. */
describeIf(canShare, 'sharing needs the native addon').each<ChannelType>(['seqpacket', 'stream'])('refused messages (%s)', (type) => {
  let addon: Addon;
  let heap: Heap;
  let src: DmaBuf;
  let raw = -1;
  let channel: DmaBufChannel;

  beforeEach(() => {
    addon = loadAddon()!;
    heap = openHeap('system');
    src = heap.alloc(heap.pageSize);
    const [r, end] = addon.socketpair(type === 'stream' ? addon.abi.SOCK_STREAM : addon.abi.SOCK_SEQPACKET);
    raw = r;
    channel = DmaBufChannel.fromFd(end, { type, maxFds: 4, maxPayload: 1024, dup: false });
  });

  afterEach(() => {
    channel.close();
    closeRaw();
    src.close();
    heap.close();
  });

  function closeRaw(): void {
    if (raw >= 0) addon.close(raw);
    raw = -1;
  }

  /** the channel goes on after a refused message: a good frame still arrives, bound to its fd */
  async function stillWorks(): Promise<void> {
    addon.sendFds(raw, frame(1, { buffers: [meta(src)], payload: 'ok' }), [src.fd]);
    const m = await channel.receive();
    expect(m.payload).toBe('ok');
    expect(m.buffers.map((b) => b.info().ino)).toEqual([src.info().ino]);
    for (const b of m.buffers) b.close();
  }

  /** send `bytes` with `fds`, expect the receive to be refused for `reason`, every received fd closed */
  async function expectRefused(bytes: Buffer, fds: number[], reason: string): Promise<void> {
    const before = openFds();
    addon.sendFds(raw, bytes, fds);
    await expect(channel.receive()).rejects.toEqual(refused(reason));
    expect(newFds(before)).toEqual([]);
  }

  test('a frame claiming 2 fds with 1 attached', async () => {
    await expectRefused(frame(2, { buffers: [meta(src), meta(src)] }), [src.fd], 'fdCount');
    await stillWorks();
  });

  test('a frame claiming 1 fd with none attached', async () => {
    await expectRefused(frame(1, { buffers: [meta(src)] }), [], 'fdCount');
    await stillWorks();
  });

  test('a pipe described as a dma-buf', async () => {
    const fifo = path.join(tmpdir(), `dma-heap-share-fifo-${process.pid}`);
    execFileSync('mkfifo', [fifo]);
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK); // O_RDWR: no waiting for a writer
    unlinkSync(fifo);
    try {
      await expectRefused(frame(2, { buffers: [meta(src), { size: 4096, tier: 'dma-heap' }] }), [src.fd, fd], 'notDmaBuf');
    } finally {
      closeSync(fd);
    }
    await stillWorks();
  });

  test('a regular file described as a dma-buf', async () => {
    const file = path.join(tmpdir(), `dma-heap-share-file-${process.pid}`);
    const fd = openSync(file, 'w+');
    unlinkSync(file);
    ftruncateSync(fd, src.size);
    try {
      await expectRefused(frame(1, { buffers: [{ size: src.size, tier: 'dma-heap' }] }), [fd], 'notDmaBuf');
    } finally {
      closeSync(fd);
    }
    await stillWorks();
  });

  test('a memfd (a software buffer) described as a real dma-buf', async () => {
    using soft = openHeap('system', { backend: 'software' });
    using buf = soft.alloc(soft.pageSize);
    expect(buf.tier).toBe('memfd');
    await expectRefused(frame(1, { buffers: [{ size: buf.size, tier: 'dma-heap' }] }), [buf.fd], 'notDmaBuf');
    await stillWorks();
  });

  test('more fds than the receiver allows: control data truncated', async () => {
    const fds = Array.from({ length: 6 }, () => src.fd);
    await expectRefused(frame(6, { buffers: fds.map(() => meta(src)) }), fds, 'controlTruncated');
    await stillWorks();
  });

  test("a size that is not the buffer's", async () => {
    await expectRefused(frame(1, { buffers: [{ size: 2 * src.size, tier: src.tier }] }), [src.fd], 'malformed');
    await stillWorks();
  });

  test.each([
    ['not JSON', '{"buffers": ['],
    ['no description per fd', { buffers: [] }],
    ['a bad description', { buffers: [{ size: -1, tier: 'floppy' }] }],
    ['not an object', 'null'],
  ])('a payload that is %s', async (_what, body) => {
    await expectRefused(frame(1, body), [src.fd], 'malformed');
    await stillWorks();
  });

  if (type === 'seqpacket') {
    test('a packet longer than maxPayload (payload truncated)', async () => {
      await expectRefused(frame(1, { buffers: [meta(src)], payload: 'x'.repeat(2000) }), [src.fd], 'truncated');
      await stillWorks();
    });

    test('a packet that is not a frame, or whose length field lies', async () => {
      await expectRefused(frame(1, { buffers: [meta(src)] }, { magic: 0xdeadbeef }), [src.fd], 'malformed');
      await expectRefused(frame(1, { buffers: [meta(src)] }, { length: 5 }), [src.fd], 'malformed');
      await expectRefused(Buffer.from('hi'), [src.fd], 'malformed');
      await stillWorks();
    });

    test('the peer gone while a receive waits', async () => {
      const pending = channel.receive();
      closeRaw();
      await expect(pending).rejects.toEqual(closedWith('peerClosed'));
    });
  } else {
    test('a frame longer than maxPayload: refused, and the stream cannot be followed further', async () => {
      await expectRefused(frame(1, { buffers: [meta(src)], payload: 'x'.repeat(2000) }), [src.fd], 'malformed');
      await expect(channel.receive()).rejects.toEqual(closedWith('error'));
      expect(channel.closed).toBe(true);
    });

    test('bytes that are not a frame: refused, the channel closes', async () => {
      await expectRefused(frame(1, { buffers: [meta(src)] }, { magic: 0xdeadbeef }), [src.fd], 'malformed');
      await expect(channel.receive()).rejects.toEqual(closedWith('error'));
    });

    test('fds that arrive in the middle of a frame', async () => {
      const f = frame(1, { buffers: [meta(src)] });
      const before = openFds();
      addon.sendFds(raw, f.subarray(0, 12), []);
      addon.sendFds(raw, f.subarray(12), [src.fd]);
      await expect(channel.receive()).rejects.toEqual(refused('malformed'));
      expect(newFds(before)).toEqual([]);
      await stillWorks();
    });

    test('two frames in one sendmsg: the fds bind to the first, both are refused', async () => {
      const before = openFds();
      addon.sendFds(raw, Buffer.concat([frame(0, { buffers: [] }), frame(1, { buffers: [meta(src)] })]), [src.fd]);
      await expect(channel.receive()).rejects.toEqual(refused('fdCount'));
      await expect(channel.receive()).rejects.toEqual(refused('fdCount'));
      expect(newFds(before)).toEqual([]);
      await stillWorks();
    });

    test('a frame sent a byte at a time, its fds with the first byte, arrives whole', async () => {
      const f = frame(1, { buffers: [meta(src)], payload: { split: true } });
      const got = channel.receive();
      for (let i = 0; i < f.length; i++) addon.sendFds(raw, f.subarray(i, i + 1), i === 0 ? [src.fd] : []);
      const m = await got;
      expect(m.payload).toEqual({ split: true });
      expect(m.buffers[0].info().ino).toBe(src.info().ino);
      m.buffers[0].close();
    });

    test('the peer gone in the middle of a message', async () => {
      const before = openFds();
      addon.sendFds(raw, frame(1, { buffers: [meta(src)], payload: 'cut short' }).subarray(0, 20), [src.fd]);
      const pending = channel.receive();
      closeRaw();
      await expect(pending).rejects.toEqual(closedWith('midMessage'));
      expect(newFds(before)).toEqual([]);
    });
  }
});
