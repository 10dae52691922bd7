/**
 * A read-only buffer stays read-only for whoever it is passed to. The kernel's read-only
 * dma-buf is an O_RDONLY file for every process that gets it; a software buffer's fd is its
 * memfd, opened O_RDWR, and was passed as it was: the receiver got `readOnly: false` and its
 * writes landed in the sender's buffer. It now goes as an O_RDONLY reopen of the memfd.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openHeap } from '../../lib/heap';
import { DmaBufChannel, spawnWithBuffers } from '../../lib/share';
import { newFds, openFds } from '../helpers/fds';
import { describeIf } from '../helpers/skip';
import { canShare, requireDist } from './helpers';

describeIf(canShare, 'sharing needs the native addon')('a read-only software buffer passed to another process', () => {
  const heap = openHeap('system', { backend: 'software' });
  afterAll(() => heap.close());

  test.each(['seqpacket', 'stream'] as const)('over a channel (%s): the receiver gets an O_RDONLY fd, readOnly, and cannot write', async (type) => {
    const before = openFds();
    const [a, b] = DmaBufChannel.pair({ type });
    const readOnly = heap.alloc(4096, { readOnly: true });
    try {
      await a.send([readOnly]);
      const { buffers } = await b.receive();
      const [got] = buffers;
      try {
        const flags = Number.parseInt(/^flags:\s*(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${got.fd}`, 'utf8'))![1], 8);
        expect({ readOnly: got.readOnly, accmode: flags & 3 }).toEqual({ readOnly: true, accmode: 0 }); // O_RDONLY
        expect(() => got.write(Buffer.from([1]), 0)).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_READ_ONLY' }));
        expect(got.read(0, 1)[0]).toBe(0);
      } finally {
        got.close();
      }
    } finally {
      readOnly.close();
      a.close();
      b.close();
    }
    expect(newFds(before)).toEqual([]); // the O_RDONLY reopen was closed once sent
  });

  test('to a child through spawnWithBuffers: the same', async () => {
    requireDist();
    const readOnly = heap.alloc(4096, { readOnly: true });
    try {
      const script = `const [b] = require(${JSON.stringify(path.resolve(__dirname, '../../dist'))}).inheritedBuffers();
let wrote = 'no error';
try { b.write(Buffer.from([1]), 0); wrote = 'wrote'; } catch (e) { wrote = e.code; }
console.log(JSON.stringify({ readOnly: b.readOnly, wrote }));`;
      const child = spawnWithBuffers(process.execPath, ['-e', script], [readOnly], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (d) => (out += d));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      expect({ code, out: JSON.parse(out) }).toEqual({ code: 0, out: { readOnly: true, wrote: 'ERR_DMA_BUF_READ_ONLY' } });
    } finally {
      readOnly.close();
    }
  });
});
