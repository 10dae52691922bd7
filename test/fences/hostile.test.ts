// Fence waits and sync_files under careless or hostile input: timeouts of any length are
// honoured, options are checked, every error of a promise-returning call is a rejection.
// A fence only a device could signal is played by the software framework's fence source.
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { addonStatus, allocShareable, DmaBuf, openHeap, SyncFile } from '../../lib';
import { Framework, SoftwareFenceSource } from '../../lib/framework';
import { loadAddon } from '../../lib/native/load';
import { longTimeout, MAX_TIMER_MS } from '../../lib/timer';
import { backends, fdTarget } from '../helpers/backends';
import { testIf } from '../helpers/skip';
import { softwareFence } from './scenarios';

let fw: Framework;
let source: SoftwareFenceSource;
let buf: DmaBuf;

beforeEach(() => ({ fw, source, buf } = softwareFence(4096)));
afterEach(() => fw.dispose());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const settled = async (p: Promise<unknown>) => {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(50);
  return done;
};

/** TimeoutOverflowWarnings emitted while `fn` runs (Node's sign of a timer cut to 1 ms) */
async function overflowWarnings(fn: () => Promise<void>): Promise<number> {
  let n = 0;
  const onWarning = (w: Error) => void (w.name === 'TimeoutOverflowWarning' && n++);
  process.on('warning', onWarning);
  try {
    await fn();
    await new Promise((r) => setImmediate(r)); // warnings are emitted on a later tick
  } finally {
    process.off('warning', onWarning);
  }
  return n;
}

describe('longTimeout', () => {
  afterEach(() => jest.useRealTimers());

  test('fires once, after the whole delay, beyond setTimeout\'s 2^31-1 ms', () => {
    jest.useFakeTimers(); // @sinonjs/fake-timers cuts an overflowing delay to 1 ms, as Node does
    const fn = jest.fn();
    longTimeout(fn, 2 * MAX_TIMER_MS + 10);
    jest.advanceTimersByTime(MAX_TIMER_MS);
    jest.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    jest.advanceTimersByTime(10);
    expect(fn).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(4 * MAX_TIMER_MS);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  test('clear() stops it in any leg', () => {
    jest.useFakeTimers();
    const fn = jest.fn();
    const t = longTimeout(fn, MAX_TIMER_MS + 10);
    jest.advanceTimersByTime(MAX_TIMER_MS + 5);
    t.clear();
    jest.advanceTimersByTime(MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
  });
});

describe('a wait timeout is honoured to any length', () => {
  const waits: [string, (timeout: number, signal: AbortSignal) => Promise<unknown>][] = [
    ['idle()', (timeout, signal) => buf.idle('read', { timeout, signal })],
    ['cpuAccessAsync()', (timeout, signal) => buf.cpuAccessAsync('read', () => 0, { timeout, signal })],
    ['SyncFile.wait()', (timeout, signal) => {
      const sf = buf.exportSyncFile('read');
      return sf.wait({ timeout, signal }).finally(() => sf.close());
    }],
  ];
  for (const [name, wait] of waits) {
    for (const timeout of [2 ** 31, 1e10, Number.MAX_VALUE, Infinity]) {
      test(`${name} with timeout ${timeout} is still pending after 50 ms; the signal ends it`, async () => {
        source.attach(buf, 'write');
        const ac = new AbortController();
        const warnings = await overflowWarnings(async () => {
          const p = wait(timeout, ac.signal);
          expect(await settled(p)).toBe(false);
          ac.abort();
          await expect(p).rejects.toMatchObject({ name: 'AbortError' });
        });
        expect(warnings).toBe(0);
      });
    }
  }

  for (const [name, wait] of waits) {
    test(`${name}: an abort with any reason (falsy, frozen, an Error) rejects with an AbortError carrying it, and never writes on it`, async () => {
      source.attach(buf, 'write');
      for (const reason of [0, '', null, false, NaN, Object.freeze({ code: 'MINE' }), new Error('frame deadline')]) {
        const ac = new AbortController();
        const p = wait(Infinity, ac.signal).then(() => 'resolved', (err: unknown) => ({ rejected: err }));
        ac.abort(reason);
        // was 'resolved' for a falsy reason (the fence still pending); a frozen one was a
        // TypeError from adding `heap` to it; an object one got `heap` written on it
        const { rejected } = (await p) as { rejected: Error & { code?: string } };
        expect({ name: rejected.name, code: rejected.code, cause: rejected.cause }).toEqual({ name: 'AbortError', code: 'ABORT_ERR', cause: reason });
        if (reason && typeof reason === 'object') expect(Object.keys(reason)).toEqual(reason instanceof Error ? [] : ['code']);
      }
    });
  }

  test('a short timeout still expires (ETIMEDOUT)', async () => {
    source.attach(buf, 'write');
    await expect(buf.idle('read', { timeout: 1 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    using sf = buf.exportSyncFile('read');
    await expect(sf.wait({ timeout: 0 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });
});

describe('SoftwareFenceSource checks what it is given', () => {
  const argError = (code: string) => expect.objectContaining({ code });

  test('the framework: an instance of Framework, not whatever attach() would trip over later', () => {
    for (const bad of [{}, null, 42, undefined, new Proxy(fw, {})]) {
      expect(() => new SoftwareFenceSource(bad as never)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    }
  });

  test('attach(buf): a DmaBuf of this framework or an fd number; typed errors for the rest', () => {
    for (const bad of [{}, null, undefined, '3', { fd: buf.fd }, buf.exportSyncFile('read')]) {
      expect(() => source.attach(bad as never, 'read')).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    }
    for (const bad of [-1, 1.5, NaN, 2 ** 31]) expect(() => source.attach(bad, 'read')).toThrow(argError('ERR_OUT_OF_RANGE'));
    const other = new Framework();
    try {
      const foreign = openHeap('system', { framework: other }).alloc(4096);
      expect(() => source.attach(foreign, 'read')).toThrow(argError('ERR_INVALID_ARG_VALUE'));
    } finally {
      other.dispose();
    }
    const closed = openHeap('system', { framework: fw }).alloc(4096);
    closed.close();
    expect(() => source.attach(closed, 'read')).toThrow(argError('EBADF'));
    source.attach(buf.fd, 'read').signal();
  });

  test('signalAfter(ms): a finite ms >= 0, checked at once; a bad one leaves the fence pending', async () => {
    const fence = source.attach(buf, 'write');
    expect(() => fence.signalAfter('5' as never)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => fence.signalAfter(undefined as never)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    for (const bad of [-1, NaN, Infinity, -Infinity]) expect(() => fence.signalAfter(bad)).toThrow(argError('ERR_OUT_OF_RANGE'));
    await sleep(20);
    expect(fence.signaled).toBe(false);
  });

  test('signalAfter(2 ** 31) and 1e10 wait that long, not 1 ms', async () => {
    const a = source.attach(buf, 'read');
    const b = source.attach(buf, 'read');
    const warnings = await overflowWarnings(async () => {
      a.signalAfter(2 ** 31);
      b.signalAfter(1e10);
      await sleep(50);
    });
    expect(warnings).toBe(0);
    expect([a.signaled, b.signaled]).toEqual([false, false]);
    a.signal(); // and the long timers go with the signal
    b.signal();
  });

  test('the error is checked before any timer: never an uncaught exception in a timer callback', async () => {
    const fence = source.attach(buf, 'write');
    for (const bad of ['EIO', 5, 0, -1.5, -4096, NaN, {}]) {
      expect(() => fence.signalAfter(1, bad as never)).toThrow(argError(typeof bad === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE'));
      expect(() => fence.signal(bad as never)).toThrow(argError(typeof bad === 'number' ? 'ERR_OUT_OF_RANGE' : 'ERR_INVALID_ARG_TYPE'));
    }
    await sleep(20); // a timer armed by a refused call would throw here
    expect(fence.signaled).toBe(false);
    fence.signalAfter(1, -5);
    await buf.idle();
    expect(fence.status).toBe(-5);
  });

  test('the timeout option: finite ms >= 0; 2 ** 31 does not expire at once', async () => {
    for (const bad of [-1, NaN, Infinity]) expect(() => new SoftwareFenceSource(fw, { timeout: bad })).toThrow(argError('ERR_OUT_OF_RANGE'));
    const patient = new SoftwareFenceSource(fw, { timeout: 2 ** 31 });
    let fence!: ReturnType<SoftwareFenceSource['attach']>;
    const warnings = await overflowWarnings(async () => {
      fence = patient.attach(buf, 'write');
      await sleep(50);
    });
    expect(warnings).toBe(0);
    expect(fence.signaled).toBe(false);
    fence.signal();
  });
});

/** values a careless or hostile caller passes as options, and the code each must reject with */
const badOptions: [string, unknown, string][] = [
  ['a typo (timout)', { timout: 20 }, 'ERR_INVALID_ARG_VALUE'],
  ['an unknown key beside good ones', { timeout: 5, signal: undefined, retries: 3 }, 'ERR_INVALID_ARG_VALUE'],
  ['a symbol key', { [Symbol('timeout')]: 5 }, 'ERR_INVALID_ARG_VALUE'],
  ['null', null, 'ERR_INVALID_ARG_TYPE'],
  ['42', 42, 'ERR_INVALID_ARG_TYPE'],
  ['a string', 'timeout', 'ERR_INVALID_ARG_TYPE'],
  ['an array', [], 'ERR_INVALID_ARG_TYPE'],
  ['a class instance', new Date(), 'ERR_INVALID_ARG_TYPE'],
  ['a function', () => 0, 'ERR_INVALID_ARG_TYPE'],
  ['a string timeout', { timeout: '5' }, 'ERR_INVALID_ARG_TYPE'],
  ['a negative timeout', { timeout: -1 }, 'ERR_OUT_OF_RANGE'],
  ['a NaN timeout', { timeout: NaN }, 'ERR_OUT_OF_RANGE'],
  ['-Infinity', { timeout: -Infinity }, 'ERR_OUT_OF_RANGE'],
  ['a signal that is none', { signal: { aborted: true } }, 'ERR_INVALID_ARG_TYPE'],
];

/** what a call did: threw synchronously (a bug here), or returned a promise and how it settled */
function outcome(call: () => Promise<unknown>): Promise<{ threw?: unknown; rejected?: unknown; resolved?: boolean }> {
  let p: Promise<unknown>;
  try {
    p = call();
  } catch (threw) {
    return Promise.resolve({ threw });
  }
  return p.then(
    () => ({ resolved: true }),
    (rejected: unknown) => ({ rejected }),
  );
}
const rejectsWith = (code: string) => ({ rejected: expect.objectContaining({ code }) });

describe.each(backends())('wait arguments on $label: checked, and every error is a rejection', (backend) => {
  let b: DmaBuf;
  let heapClose: () => void;
  beforeEach(() => {
    const heap = openHeap('system', backend.options());
    heapClose = () => heap.close();
    b = heap.alloc(4096);
  });
  afterEach(() => {
    b.close();
    heapClose();
  });

  test.each(badOptions)('options: %s', async (_name, options, code) => {
    using sf = b.exportSyncFile('read');
    expect(await outcome(() => b.idle('read', options as never))).toEqual(rejectsWith(code));
    expect(await outcome(() => b.cpuAccessAsync('read', () => 0, options as never))).toEqual(rejectsWith(code));
    expect(await outcome(() => sf.wait(options as never))).toEqual(rejectsWith(code));
  });

  test('bad access and a callback that is no function reject; nothing ran', async () => {
    expect(await outcome(() => b.idle('sideways' as never))).toEqual(rejectsWith('ERR_INVALID_ARG_VALUE'));
    expect(await outcome(() => b.cpuAccessAsync('sideways' as never, () => 0))).toEqual(rejectsWith('ERR_INVALID_ARG_VALUE'));
    for (const fn of [42, undefined, null, {}, 'fn']) {
      expect(await outcome(() => b.cpuAccessAsync('read', fn as never))).toEqual(rejectsWith('ERR_INVALID_ARG_TYPE'));
    }
  });

  test('a getter in the options runs once and its throw is a rejection too', async () => {
    let reads = 0;
    const options = {
      get timeout() {
        reads++;
        if (reads > 1) throw new Error('read twice');
        return 1000;
      },
    };
    await b.idle('read', options);
    expect(reads).toBe(1);
    const hostile = {
      get timeout(): number {
        throw new Error('hostile getter');
      },
    };
    expect(await outcome(() => b.idle('read', hostile))).toEqual({ rejected: expect.objectContaining({ message: 'hostile getter' }) });
  });

  test('a closed buffer or sync_file rejects, with good and bad options alike', async () => {
    const sf = b.exportSyncFile('read');
    sf.close();
    b.close();
    for (const options of [undefined, { timeout: 1 }, null, { timout: 1 }]) {
      expect(await outcome(() => b.idle('read', options as never))).toEqual({ rejected: expect.anything() });
      expect(await outcome(() => b.cpuAccessAsync('read', () => 0, options as never))).toEqual({ rejected: expect.anything() });
      expect(await outcome(() => sf.wait(options as never))).toEqual({ rejected: expect.anything() });
    }
    expect(await outcome(() => b.idle())).toEqual(rejectsWith('ERR_DMA_BUF_CLOSED'));
    expect(await outcome(() => sf.wait())).toEqual(rejectsWith('ERR_SYNC_FILE_CLOSED'));
  });

  test('good options: undefined, {}, and both keys', async () => {
    expect(await outcome(() => b.idle('read', undefined))).toEqual({ resolved: true });
    expect(await outcome(() => b.idle('read', {}))).toEqual({ resolved: true });
    expect(await outcome(() => b.idle('read', { timeout: 5, signal: new AbortController().signal }))).toEqual({ resolved: true });
    expect(await outcome(() => b.cpuAccessAsync('read', () => 0, Object.create(null)))).toEqual({ resolved: true });
  });
});

testIf(addonStatus().loaded, 'a plain memfd needs the native addon (memfd_create)')('a plain memfd (no fences ever) refuses bad wait options too', async () => {
  using plain = allocShareable(4096, { tiers: ['memfd'] });
  expect(plain.isDmaBuf).toBe(false);
  expect(await outcome(() => plain.idle('read', { timout: 1 } as never))).toEqual(rejectsWith('ERR_INVALID_ARG_VALUE'));
  expect(await outcome(() => plain.idle('read', null as never))).toEqual(rejectsWith('ERR_INVALID_ARG_TYPE'));
});

test('importSyncFile: a look-alike of a SyncFile is ERR_INVALID_ARG_TYPE, not a bare TypeError', () => {
  using sf = buf.exportSyncFile('read');
  for (const fake of [Object.create(SyncFile.prototype), new Proxy(sf, {}), {}, null]) {
    expect(() => buf.importSyncFile(fake, 'read')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  }
  buf.importSyncFile(sf, 'read');
});

describe('SyncFile.fromFd of an fd that is no sync_file: EINVAL if open, EBADF if not (as sync_file_fdget)', () => {
  /** an fd of this process whose /proc/self/fd link starts with `prefix` (libuv holds pipes and eventfds) */
  const fdOf = (prefix: string): number => {
    const fd = readdirSync('/proc/self/fd').map(Number).find((n) => fdTarget(n).startsWith(prefix));
    if (fd === undefined) throw new Error(`no ${prefix} fd in this process`);
    return fd;
  };
  const notSyncFile = expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/, not a sync_file, /) });

  test('a pipe, an eventfd, a socket, a regular file, a software dma-buf', async () => {
    // a Unix socket: the self-built kernels have no IPv4 (listen on 127.0.0.1 is EAFNOSUPPORT there)
    const dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-syncfile-'));
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path.join(dir, 's'), resolve));
    const file = openSync(__filename, 'r');
    try {
      const socket = (server as unknown as { _handle: { fd: number } })._handle.fd;
      for (const fd of [fdOf('pipe:'), fdOf('anon_inode:[eventfd]'), socket, file, buf.fd]) {
        expect(() => SyncFile.fromFd(fd)).toThrow(notSyncFile);
        expect(fdTarget(fd)).not.toBe(''); // the caller's fd is left open
      }
      expect(() => SyncFile.fromFd(file, { dup: false })).toThrow(notSyncFile);
      expect(fdTarget(file)).not.toBe(''); // refused: not taken over, not closed
    } finally {
      closeSync(file);
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  testIf(addonStatus().loaded, 'a memfd needs the native addon (memfd_create)')('a memfd', () => {
    const fd = loadAddon()!.memfdCreate('not-a-sync-file', 1);
    try {
      expect(() => SyncFile.fromFd(fd)).toThrow(notSyncFile);
    } finally {
      closeSync(fd);
    }
  });

  test('a closed fd and one never opened stay EBADF', () => {
    const fd = openSync(__filename, 'r');
    closeSync(fd);
    for (const bad of [fd, 0x7fffff00]) expect(() => SyncFile.fromFd(bad)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  test("the framework's own sync_files are still adopted", () => {
    source.attach(buf, 'write');
    using sf = buf.exportSyncFile('read');
    using again = SyncFile.fromFd(sf.fd, { framework: fw });
    expect(again.status).toBe('active');
  });
});
