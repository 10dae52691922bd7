/**
 * Exhaustion in child processes (util-linux prlimit): fds (RLIMIT_NOFILE) and address space
 * (RLIMIT_AS). Every failure must be a coded error (EMFILE / ENOMEM), nothing half-made may
 * stay, and once things are let go the package works again. A server at EMFILE backs off
 * instead of spinning or dying, and serves again once fds are free.
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { addonStatus, DmaBufChannel, openHeap } from '../../lib';
import { node, python, requireDist, scratchDir } from './procs';
import { testIf } from '../helpers/skip';

const withAddon = addonStatus().loaded;
const testAddon = testIf(withAddon, 'memfd buffers, fds and sockets need the native addon');

const coded = (code: string) => expect.objectContaining({ code });

describe('exhaustion in a child process', () => {
  let dir: string;
  beforeAll(() => {
    requireDist();
    dir = scratchDir('exhaust');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  testAddon('RLIMIT_NOFILE: every way of making an fd ends in EMFILE, then works again and holds what it held', async () => {
    const child = node('exhaust.js', ['fds'], ['prlimit', '--nofile=64']);
    const phases: Record<string, any> = {};
    for (;;) {
      const line = await child.next();
      if (line.done) {
        // everything let go: the same fds and mappings as before the first phase (the heap was closed too)
        expect(line.end.fds).toBeLessThanOrEqual(line.base.fds);
        expect(line.end.maps).toBe(line.base.maps);
        break;
      }
      phases[line.phase] = line;
    }
    for (const name of ['alloc', 'map', 'dup', 'openHeap', 'pair']) {
      const p = phases[name];
      expect([name, p.error]).toEqual([name, coded('EMFILE')]);
      expect(p.made).toBeGreaterThan(0);
      expect([name, p.after]).toEqual([name, p.base]); // nothing half-made
      expect([name, p.again]).toEqual([name, 7]); // full recovery
    }
    // a message whose fds could not be installed is refused (not half-delivered); the channel goes on
    expect(phases.receive.refused).toEqual(expect.objectContaining({ code: 'ERR_DMA_HEAP_BAD_MESSAGE', reason: 'controlTruncated' }));
    expect(phases.receive.recovered).toBe(true);
    expect(await child.closed).toEqual({ code: 0, signal: null });
  });

  testAddon('RLIMIT_AS: mapping ends in ENOMEM; read()/write() at the limit still work; then it all works again', async () => {
    const child = node('exhaust.js', ['as']);
    const { vm } = await child.next();
    // The child's own size now, eight 64 MiB mappings, and 32 MiB more. Each mapping's external
    // ArrayBuffer counts toward V8's external memory and may run a mark-compact right after the
    // mmap (Buffer::New -> AdjustAmountOfExternalAllocatedMemory -> MarkCompact): what is left
    // then is all that collection has. With exactly 8 x 64 MiB that could be next to nothing,
    // and V8 died of OOM there (once, in a VM run).
    const MiB = 1024 * 1024;
    execFileSync('prlimit', ['--pid', String(child.child.pid), `--as=${vm + 8 * 64 * MiB + 32 * MiB}`]);
    child.child.stdin!.write('go\n');
    const r = await child.next();
    expect(r.error).toEqual(expect.objectContaining({ code: 'ENOMEM', syscall: 'mmap' }));
    expect(r.made).toBeGreaterThan(0);
    expect(r.mapTwice).toEqual(expect.objectContaining({ code: 'ENOMEM', syscall: 'mmap' }));
    expect(r.copiedAtLimit).toEqual([1, 2, 3, 4]); // a copy maps only the page it touches
    expect(r.after).toEqual(r.base);
    expect(r.again).toBe(9);
    const done = await child.next();
    expect(done.end.maps).toBe(done.base.maps);
    expect(await child.closed).toEqual({ code: 0, signal: null });
  });

  for (const listener of [false, true]) {
    testAddon(`a server at EMFILE (${listener ? 'with' : 'without'} an 'error' listener) backs off, survives, and serves again`, async () => {
      const seq = path.join(dir, `emfile-${listener}-seq.sock`);
      const stream = path.join(dir, `emfile-${listener}-stream.sock`);
      const limit = 64;
      const server = node('consumer-server.js', [seq, stream, ...(listener ? ['--error-listener'] : [])], ['prlimit', `--nofile=${limit}`]);
      using heap = openHeap('system', { backend: 'software' });
      const ready = await server.next();
      expect(ready.ready).toBe(true);
      const client = DmaBufChannel.connect<any>(seq); // the server's echo, as it writes it
      const echo = async (i: number, withBuffer = false) => {
        const b = withBuffer ? heap.alloc(4096) : null;
        try {
          await client.send(b ? [b] : [], { echo: i });
          return (await client.receive()).payload;
        } finally {
          b?.close();
        }
      };
      const base = await echo(0, true);
      // far more connections than the server has fds: they wait in the backlog
      const flood = python(['hold', seq, 'seqpacket', '200']);
      expect(await flood.next()).toEqual({ held: 200, error: null });
      // the server takes connections until it has no fd left (bounded: it must get there)
      let at = await echo(1);
      for (let i = 2; i < 2000 && !at.holding.full; i++) at = await echo(i);
      expect(at.holding).toEqual({ full: true });
      // and then it waits: many turns of its event loop later, it has not spun on accept()
      for (let i = 0; i < 50; i++) at = await echo(10000 + i);
      if (listener) {
        expect(at.codes).toEqual({ EMFILE: expect.any(Number) });
        expect(at.errors).toBeLessThanOrEqual(3); // one report per time it ran out, not one per try
      }
      // the flood goes: the server accepts again, and a new client with a buffer is served
      flood.child.stdin!.end();
      expect(await flood.next()).toEqual({ released: 200 });
      await flood.closed;
      let fresh: DmaBufChannel<any> | null = null;
      try {
        fresh = DmaBufChannel.connect<any>(seq);
        const b = heap.alloc(4096);
        await fresh.send([b], { echo: 'fresh' });
        b.close();
        const answer = (await fresh.receive()).payload;
        expect(answer.echo).toBe('fresh');
        expect(answer.seen).toHaveLength(1);
        // back to what it held (bounded wait for the last hung-up channels to be noticed)
        fresh.close();
        let now = await echo(20000, true);
        for (let i = 0; i < 500 && now.holding.fds !== base.holding.fds; i++) {
          await new Promise((r) => setTimeout(r, 10));
          now = await echo(20001 + i);
        }
        expect(now.holding).toEqual(base.holding);
      } finally {
        fresh?.close();
        client.close();
        server.child.kill('SIGTERM');
      }
      expect({ exit: await server.closed, stderr: server.stderr() }).toEqual({ exit: { code: null, signal: 'SIGTERM' }, stderr: '' });
    });
  }
});
