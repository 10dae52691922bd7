// SyncFiles travel like buffers (lib/share/): a real kernel's sync_file crosses a channel or a
// spawn; a software framework's can't (it is a JS object) and is refused before anything is
// sent; a receiver checks that an fd described as a sync_file is one (SYNC_IOC_FILE_INFO) and
// refuses the whole message otherwise, closing every fd. The host has no sync_file source: the
// real crossing is tested under vgem in test/fences/devices.test.ts.
import { spawn } from 'node:child_process';
import { openHeap } from '../../lib/heap';
import { DmaBufChannel, spawnWithBuffers } from '../../lib/share';
import { SyncFile } from '../../lib/sync-file';
import { loadAddon } from '../../lib/native/load';
import { newFds, openFds } from '../helpers/backends';
import { describeIf } from '../helpers/skip';
import { canShare, FIXTURES, requireDist } from './helpers';
import path from 'node:path';

/** A frame as lib/share/ lays it out (written again here: the tests pin the format). */
function frame(fdCount: number, body: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(body));
  const out = Buffer.alloc(12 + json.length);
  out.writeUInt32LE(0x42414d44, 0);
  out[4] = 1;
  out.writeUInt16LE(fdCount, 6);
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 12);
  return out;
}

const notShareable = expect.objectContaining({ code: 'ERR_DMA_HEAP_NOT_SHAREABLE', message: expect.stringMatching(/software framework's sync_file/) });

test("a software framework's sync_file is refused by spawnWithBuffers before any child starts", () => {
  const heap = openHeap('system', { backend: 'software' });
  try {
    using buf = heap.alloc(heap.pageSize);
    using sf = buf.exportSyncFile('read');
    expect(sf.backend).toBe('software');
    expect(() => spawnWithBuffers(process.execPath, ['-e', ''], [sf])).toThrow(notShareable);
    expect(() => spawnWithBuffers(process.execPath, ['-e', ''], [{ fd: sf.fd } as never])).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringMatching(/DmaBuf or SyncFile/) }),
    );
  } finally {
    heap.close();
  }
});

describeIf(canShare, 'sharing needs the native addon')('sync_files over a channel (host: no real sync_file source)', () => {
  test("send() refuses a software sync_file, alone or beside a buffer; nothing is sent", async () => {
    const sw = openHeap('system', { backend: 'software' });
    const heap = openHeap('system');
    const [a, b] = DmaBufChannel.pair();
    try {
      using swBuf = sw.alloc(sw.pageSize);
      using sf = swBuf.exportSyncFile('write');
      using buf = heap.alloc(heap.pageSize);
      await expect(a.send([sf])).rejects.toEqual(notShareable);
      await expect(a.send([buf, sf], 'mixed')).rejects.toEqual(notShareable);
      await a.send([buf], 'after');
      const m = await b.receive();
      expect(m.payload).toBe('after'); // the refused sends sent nothing
      expect(m.items).toEqual(m.buffers);
      expect(m.syncFiles).toEqual([]);
      for (const x of m.items) x.close();
    } finally {
      a.close();
      b.close();
      heap.close();
      sw.close();
    }
  });

  test('SyncFile.fromFd refuses a buffer fd with EINVAL, and leaves it open', () => {
    const heap = openHeap('system');
    try {
      using buf = heap.alloc(heap.pageSize);
      const before = openFds();
      expect(() => SyncFile.fromFd(buf.fd)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      expect(newFds(before)).toEqual([]);
      expect(buf.info().size).toBe(heap.pageSize);
    } finally {
      heap.close();
    }
  });

  describe.each(['seqpacket', 'stream'] as const)('a message whose "sync_file" is not one (%s)', (type) => {
    test('is refused (notSyncFile), every fd closed, buffers adopted before it too; the channel goes on', async () => {
      const addon = loadAddon()!;
      const heap = openHeap('system');
      const [raw, end] = addon.socketpair(type === 'stream' ? addon.abi.SOCK_STREAM : addon.abi.SOCK_SEQPACKET);
      const channel = DmaBufChannel.fromFd(end, { type, dup: false });
      try {
        using src = heap.alloc(heap.pageSize);
        const meta = { size: src.size, tier: src.tier };
        const refused = (reason: string) => expect.objectContaining({ code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason });
        let before = openFds();
        addon.sendFds(raw, frame(2, { buffers: [meta, { kind: 'sync-file' }] }), [src.fd, src.fd]);
        await expect(channel.receive()).rejects.toEqual(refused('notSyncFile'));
        expect(newFds(before)).toEqual([]);
        before = openFds();
        addon.sendFds(raw, frame(1, { buffers: [{ kind: 'fence' }] }), [src.fd]);
        await expect(channel.receive()).rejects.toEqual(refused('malformed'));
        expect(newFds(before)).toEqual([]);
        // the old shape (no kind) and an explicit 'dma-buf' both still mean a buffer
        addon.sendFds(raw, frame(2, { buffers: [meta, { kind: 'dma-buf', ...meta }], payload: 'ok' }), [src.fd, src.fd]);
        const m = await channel.receive();
        expect(m.payload).toBe('ok');
        expect(m.buffers.map((x) => x.info().ino)).toEqual([src.info().ino, src.info().ino]);
        expect(m.items).toEqual(m.buffers);
        for (const x of m.items) x.close();
      } finally {
        channel.close();
        addon.close(raw);
        heap.close();
      }
    });
  });

  test('a child refuses an inherited fd described as a sync_file that is not one', async () => {
    requireDist();
    const heap = openHeap('system');
    try {
      using src = heap.alloc(heap.pageSize);
      const child = spawn(process.execPath, [path.join(FIXTURES, 'child-items.js')], {
        stdio: ['ignore', 'pipe', 'inherit', src.fd],
        env: { ...process.env, DMA_HEAP_FDS: JSON.stringify([{ fd: 3, kind: 'sync-file' }]) },
      });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const code = await new Promise((r) => child.on('close', r));
      expect({ code, out: JSON.parse(out) }).toEqual({
        code: 0,
        out: { error: { name: 'DmaBufChannelError', code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason: 'notSyncFile' } },
      });
    } finally {
      heap.close();
    }
  });
});
