/**
 * The public surface is one shape everywhere (issue 18). The classes a user never constructs
 * (each has a factory) refuse `new` with ERR_ILLEGAL_CONSTRUCTOR before touching anything:
 * their constructors take a token only the package holds. (The types side, `new Heap()` not
 * compiling against the shipped .d.ts, is test/docs/types/public-types.ts.)
 */
import { DmaBuf, DmaBufChannel, DmaBufServer, Heap, PooledBuffer, SyncFile } from '../../lib';

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
