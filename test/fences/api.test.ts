// The fence API on the software framework: what the real kernel does with a device
// (test/fences/devices.test.ts) is played here by a SoftwareFenceSource. Runs on every host.
import { DmaBuf, DmaHeapError, openHeap, SyncFile } from '../../lib';
import { Framework, SoftwareFenceSource } from '../../lib/framework';
import { INTERNAL_CONSTRUCTOR } from '../../lib/internal-token';
import { softwareFence } from './scenarios';

let fw: Framework;
let source: SoftwareFenceSource;
let buf: DmaBuf;

beforeEach(() => ({ fw, source, buf } = softwareFence(8192)));
afterEach(() => fw.dispose());

/** ticks of a timer while `p` is pending: the loop stays free */
function ticking(): { count: () => number; stop: () => void } {
  let n = 0;
  const t = setInterval(() => n++, 1);
  return { count: () => n, stop: () => clearInterval(t) };
}
const settled = async (p: Promise<unknown>) => {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};
const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 1));
};

describe('idle()', () => {
  test('resolves at once when nothing is pending', async () => {
    expect(await settled(buf.idle())).toBe(true);
    expect(await settled(buf.idle('read'))).toBe(true);
  });

  test('resolves only after the signal, while timers keep running', async () => {
    const fence = source.attach(buf, 'write');
    const timer = ticking();
    let resolved = false;
    const idle = buf.idle('read').then(() => (resolved = true));
    await until(() => timer.count() >= 5);
    expect(resolved).toBe(false);
    fence.signal();
    await idle;
    timer.stop();
    expect(resolved).toBe(true);
  });

  test('a read fence holds writers, not readers', async () => {
    const fence = source.attach(buf, 'read');
    expect(await settled(buf.idle('read'))).toBe(true);
    const write = buf.idle('write');
    expect(await settled(write)).toBe(false);
    fence.signalAfter(5);
    await write;
  });

  test('AbortSignal and timeout end the wait; the fence stays pending', async () => {
    const fence = source.attach(buf, 'write');
    const ac = new AbortController();
    const aborted = buf.idle('read', { signal: ac.signal });
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError' });
    await expect(buf.idle('read', { timeout: 5 })).rejects.toMatchObject({ code: 'ETIMEDOUT', syscall: 'poll' });
    await expect(buf.idle('read', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(fence.signaled).toBe(false);
    fence.signal();
    await buf.idle();
  });

  test('a fence signalled with an error still ends the wait (the sync_file reports the error)', async () => {
    const fence = source.attach(buf, 'write');
    const sf = buf.exportSyncFile('read');
    fence.signal(-5);
    await buf.idle();
    expect(sf.info()).toMatchObject({ status: 'error', rawStatus: -5 });
    sf.close();
  });
});

describe('cpuAccessAsync()', () => {
  test('waits for the fence without blocking, then runs the callback in a bracket that always ends', async () => {
    buf.write(Buffer.from('device wrote this'));
    const fence = source.attach(buf, 'write');
    const timer = ticking();
    let ran = false;
    const p = buf.cpuAccessAsync('read', (bytes) => {
      ran = true;
      expect(fw.kernel.dmaBuf(buf.fd)?.cpuAccess.active).toBe('DMA_FROM_DEVICE');
      return Buffer.from(bytes.subarray(0, 17)).toString();
    });
    await until(() => timer.count() >= 5);
    expect(ran).toBe(false);
    fence.signal();
    await expect(p).resolves.toBe('device wrote this');
    timer.stop();
    const state = fw.kernel.dmaBuf(buf.fd)!.cpuAccess;
    expect(state).toEqual({ active: null, begins: 1, ends: 1 });
  });

  test('an async callback that rejects still ends the bracket', async () => {
    await expect(
      buf.cpuAccessAsync('write', async () => {
        await new Promise((r) => setTimeout(r, 1));
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(fw.kernel.dmaBuf(buf.fd)!.cpuAccess).toEqual({ active: null, begins: 1, ends: 1 });
  });
});

describe('synchronous SYNC start with a pending software fence', () => {
  test('fails EDEADLK instead of hanging (only this thread could signal it)', () => {
    const fence = source.attach(buf, 'write');
    expect(() => buf.beginCpuAccess('read')).toThrow(expect.objectContaining({ code: 'EDEADLK', syscall: 'ioctl' }));
    expect(() => buf.cpuAccess('read', () => 0)).toThrow(expect.objectContaining({ code: 'EDEADLK' }));
    fence.signal();
    buf.cpuAccess('read', () => 0);
  });
});

describe('sync_file', () => {
  test('export: active until the signal, wait() resolves after it; close and dispose', async () => {
    const fence = source.attach(buf, 'write');
    const sf = buf.exportSyncFile('read');
    expect(sf.status).toBe('active');
    expect(sf.info()).toMatchObject({ numFences: 1, name: expect.stringMatching(/^swfence-software\d+-1$/) });
    const waited = sf.wait();
    expect(await settled(waited)).toBe(false);
    fence.signal();
    await waited;
    expect(sf.status).toBe('signaled');
    {
      using d = sf.dup();
      expect(d.status).toBe('signaled');
    }
    sf.close();
    sf.close();
    expect(() => sf.info()).toThrow(expect.objectContaining({ code: 'ERR_SYNC_FILE_CLOSED' }));
  });

  test('nothing pending exports the signalled stub', () => {
    using sf = buf.exportSyncFile('readwrite');
    expect(sf.info()).toEqual({ name: 'stub-stub0-0', status: 'signaled', rawStatus: 1, numFences: 1 });
  });

  test('import: the other buffer waits for the same fence', async () => {
    const other = openHeap('system', { framework: fw }).alloc(4096);
    const fence = source.attach(buf, 'write');
    using sf = buf.exportSyncFile('read');
    other.importSyncFile(sf, 'write');
    expect(await settled(other.idle('read'))).toBe(false);
    const idle = other.idle('read');
    fence.signal();
    await idle;
  });

  test('fromFd adopts a sync_file of the framework and refuses other fds', () => {
    source.attach(buf, 'read');
    using sf = buf.exportSyncFile('write');
    using again = SyncFile.fromFd(sf.fd, { framework: fw });
    expect(again.fd).not.toBe(sf.fd);
    expect(again.status).toBe('active');
    expect(() => SyncFile.fromFd(buf.fd, { framework: fw })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  test('importSyncFile / exportSyncFile check their arguments', () => {
    using sf = buf.exportSyncFile('read');
    expect(() => buf.importSyncFile(sf, 'readwrite' as never)).toThrow(TypeError);
    expect(() => buf.importSyncFile({} as never, 'read')).toThrow(TypeError);
    expect(() => buf.exportSyncFile('sideways' as never)).toThrow();
  });
});

describe('SoftwareFenceSource', () => {
  test('conflicting fences are EBUSY, as vgem refuses them; unknown fds EBADF', () => {
    const w = source.attach(buf, 'write');
    expect(() => source.attach(buf, 'read')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    w.signal();
    source.attach(buf, 'read');
    expect(() => source.attach(buf, 'write')).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(() => source.attach(123456, 'read')).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  test('an unsignalled fence expires after its timeout, as vgem\'s do after 10 s', async () => {
    const quick = new SoftwareFenceSource(fw, { timeout: 5 });
    const f = quick.attach(buf, 'write');
    await buf.idle();
    expect(f.signaled).toBe(true);
  });
});

describe('kernels before 6.0', () => {
  test('EXPORT/IMPORT_SYNC_FILE answering ENOTTY become "not supported by this kernel"', () => {
    // a kernel that says what a 5.x kernel says to the sync_file ioctls
    const old = new Proxy(fw.kernel, {
      get(target, prop, receiver) {
        if (prop === 'ioctl') {
          return (fd: number, cmd: number, arg: Uint8Array | null) => {
            if (cmd === 0xc0086202 || cmd === 0x40086203) throw new DmaHeapError('ENOTTY', 'ioctl');
            return target.ioctl(fd, cmd, arg);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const b = new DmaBuf(INTERNAL_CONSTRUCTOR, fw.kernel.dup(buf.fd, true), { kernel: old, tier: 'memfd', readOnly: false });
    try {
      expect(() => b.exportSyncFile('read')).toThrow(
        expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl', message: expect.stringContaining('not supported by this kernel') }),
      );
      using sf = buf.exportSyncFile('read');
      using viaOld = new SyncFile(INTERNAL_CONSTRUCTOR, fw.kernel.dup(sf.fd, true), old);
      expect(() => b.importSyncFile(viaOld, 'read')).toThrow(expect.objectContaining({ code: 'ENOTTY' }));
    } finally {
      b.close();
    }
  });
});
