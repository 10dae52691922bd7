/**
 * The public surface is one shape everywhere (issue 18). The classes a user never constructs
 * (each has a factory) refuse `new` with ERR_ILLEGAL_CONSTRUCTOR before touching anything:
 * their constructors take a token only the package holds. (The types side, `new Heap()` not
 * compiling against the shipped .d.ts, is test/docs/types/public-types.ts.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { addonStatus, DmaBuf, DmaBufChannel, DmaBufServer, Heap, openHeap, PooledBuffer, SyncFile } from '../../lib';
import { Framework } from '../../lib/framework';
import { testIf } from '../helpers/skip';

/** A stand-in for every argument after the token: records each method called on it. */
function recorder(): { calls: PropertyKey[]; fake: object } {
  const calls: PropertyKey[] = [];
  const fake = new Proxy(
    {},
    {
      get: (_t, key) => (key === 'then' ? undefined : (..._args: unknown[]) => (calls.push(key), 3)),
    },
  );
  return { calls, fake };
}

const internalClasses = [
  ['Heap', Heap, /openHeap\(\)/],
  ['DmaBuf', DmaBuf, /Heap\.alloc\(\)/],
  ['SyncFile', SyncFile, /exportSyncFile\(\)/],
  ['PooledBuffer', PooledBuffer, /acquire\(\)/],
  ['DmaBufChannel', DmaBufChannel, /DmaBufChannel\.connect\(\)/],
  ['DmaBufServer', DmaBufServer, /DmaBufChannel\.listen\(\)/],
] as const;

type AnyClass = new (...args: unknown[]) => object;

describe.each(internalClasses)('new %s()', (_name, Class, use) => {
  const illegal = (message: RegExp) => expect.objectContaining({ name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR', message: expect.stringMatching(message) });

  test('without arguments: a TypeError naming the factory to use', () => {
    let thrown: unknown;
    try {
      new (Class as unknown as AnyClass)();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(TypeError);
    expect(thrown).toEqual(illegal(/^Illegal constructor: use /));
    expect(thrown).toEqual(illegal(use));
  });

  test('with any other first argument (a look-alike symbol, what the constructor once took): refused before anything is touched', () => {
    const { calls, fake } = recorder();
    for (const first of [Symbol('dma-heap internal constructor'), 3, fake, undefined]) {
      expect(() => new (Class as unknown as AnyClass)(first, fake, fake, fake, fake)).toThrow(illegal(use));
    }
    expect(calls).toEqual([]);
  });

  test('a subclass cannot supply the token either: super() throws the same TypeError, nothing half-made', () => {
    const { calls, fake } = recorder();
    const Base = Class as unknown as AnyClass;
    class Sub extends Base {
      constructor() {
        super(undefined, fake, fake, fake, fake);
      }
    }
    expect(() => new Sub()).toThrow(illegal(use));
    expect(() => Reflect.construct(Base, [], Sub)).toThrow(illegal(use));
    expect(calls).toEqual([]);
  });
});

test('DmaBuf: the tokenless internal form passes only with the real kernel, which no public API hands out', () => {
  const { calls, fake } = recorder();
  expect(() => new (DmaBuf as unknown as AnyClass)(3, { kernel: fake, tier: 'memfd', readOnly: false })).toThrow(
    expect.objectContaining({ code: 'ERR_ILLEGAL_CONSTRUCTOR' }),
  );
  expect(calls).toEqual([]);
});

/**
 * Every closable object says so the same way: `closed`, false until close() and true after;
 * `using` (Symbol.dispose) wherever there is close(), `await using` (Symbol.asyncDispose)
 * wherever there is closeAsync(). (PooledBuffer is no closable: it is released, and says
 * `released`.) Software backend, so it runs everywhere; the channels need the addon.
 */
describe('closable objects: closed, close(), Symbol.dispose; closeAsync() and Symbol.asyncDispose together', () => {
  interface Closable {
    closed: boolean;
    close(): void;
    closeAsync?: () => Promise<void>;
    [Symbol.dispose]?: () => void;
    [Symbol.asyncDispose]?: () => Promise<void>;
  }
  const canShare = addonStatus().loaded;
  /** what a case opened besides the object under test, closed after it */
  const cleanup: (() => void)[] = [];
  afterEach(() => cleanup.splice(0).reverse().forEach((f) => f()));
  const heap = () => {
    const framework = new Framework();
    const h = openHeap('system', { framework });
    cleanup.push(() => framework.dispose(), () => h.close());
    return h;
  };
  const buffer = () => {
    const b = heap().alloc(4096);
    cleanup.push(() => b.close());
    return b;
  };
  const socketDir = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'surface-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const makers: [string, () => Closable, boolean][] = [
    ['Heap', heap, true],
    ['DmaBuf', () => heap().alloc(4096), true],
    ['SyncFile', () => buffer().exportSyncFile(), true],
    ['BufferPool', () => heap().createPool({ size: 4096, count: 1 }), true],
    [
      'DmaBufChannel',
      () => {
        const [a, b] = DmaBufChannel.pair();
        cleanup.push(() => b.close());
        return a;
      },
      canShare,
    ],
    ['DmaBufServer', () => DmaBufChannel.listen(path.join(socketDir(), 's.sock')), canShare],
  ];

  describe.each(makers)('%s', (_name, make, runs) => {
    const testShare = testIf(runs, 'needs the native addon (sockets)');

    testShare('closed: false, then true after close() (idempotent)', () => {
      const obj = make();
      expect(obj.closed).toBe(false);
      obj.close();
      expect(obj.closed).toBe(true);
      obj.close();
      expect(obj.closed).toBe(true);
    });

    testShare('Symbol.dispose closes it; Symbol.asyncDispose is there exactly when closeAsync() is, and closes it', async () => {
      const obj = make();
      expect(typeof obj[Symbol.dispose]).toBe('function');
      obj[Symbol.dispose]!();
      expect(obj.closed).toBe(true);
      const other = make();
      expect(typeof other[Symbol.asyncDispose]).toBe(typeof other.closeAsync === 'function' ? 'function' : 'undefined');
      if (other[Symbol.asyncDispose]) await other[Symbol.asyncDispose]!();
      else other.close();
      expect(other.closed).toBe(true);
    });
  });
});
