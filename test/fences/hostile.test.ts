// Fence waits and sync_files under careless or hostile input: timeouts of any length are
// honoured, options are checked, every error of a promise-returning call is a rejection.
// A fence only a device could signal is played by the software framework's fence source.
import { DmaBuf, Framework, openHeap, SoftwareFenceSource } from '../../lib';
import { longTimeout, MAX_TIMER_MS } from '../../lib/timer';

let fw: Framework;
let source: SoftwareFenceSource;
let buf: DmaBuf;

beforeEach(() => {
  fw = new Framework();
  source = new SoftwareFenceSource(fw);
  buf = openHeap('system', { framework: fw }).alloc(4096);
});
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

  test('a short timeout still expires (ETIMEDOUT)', async () => {
    source.attach(buf, 'write');
    await expect(buf.idle('read', { timeout: 1 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    using sf = buf.exportSyncFile('read');
    await expect(sf.wait({ timeout: 0 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
  });
});
