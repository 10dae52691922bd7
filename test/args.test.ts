/**
 * The one factory for argument errors (lib/args.ts) and the strict public boundary built on it:
 * Node's codes and classes, values shown without running their code, booleans that are
 * booleans, options that are plain objects with known keys.
 */
import { checkedOptions, describeReceived, invalidArgType, invalidArgValue, outOfRange, validateOptions } from '../lib/args';
import { DmaBuf, fromFd } from '../lib/dmabuf';
import { Framework } from '../lib/framework';
import { listHeaps, openHeap } from '../lib/heap';
import { allocShareable } from '../lib/tiers';

describe('the factory', () => {
  test("Node's codes, classes and wording", () => {
    const t = invalidArgType('fd', 'of type number', 'x');
    expect(t).toBeInstanceOf(TypeError);
    expect(t).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE', message: `The "fd" argument must be of type number. Received type string ('x')` });
    const v = invalidArgValue('options.backend', 'gpu', "must be 'auto', 'kernel' or 'software'");
    expect(v).toBeInstanceOf(TypeError);
    expect(v).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    expect(v.message).toBe(`The property 'options.backend' must be 'auto', 'kernel' or 'software'. Received type string ('gpu')`);
    const r = outOfRange('size', '> 0', -1);
    expect(r).toBeInstanceOf(RangeError);
    expect(r).toMatchObject({ code: 'ERR_OUT_OF_RANGE', message: 'The value of "size" is out of range. It must be > 0. Received -1' });
  });

  test('values are described without running anything they control', () => {
    let ran = 0;
    const hostile = {
      toString() {
        ran++;
        throw new Error('toString ran');
      },
      toJSON() {
        ran++;
        throw new Error('toJSON ran');
      },
      get [Symbol.toStringTag]() {
        ran++;
        return 'X';
      },
    };
    expect(describeReceived(hostile)).toBe(' Received an instance of Object');
    class Camera {}
    expect(describeReceived(new Camera())).toBe(' Received an instance of Camera');
    const trap = new Proxy(
      {},
      {
        getPrototypeOf() {
          ran++;
          throw new Error('trap ran');
        },
      },
    );
    expect(describeReceived(trap)).toBe(' Received an object');
    expect(ran).toBe(1); // the Proxy's trap was called and its throw caught; nothing else ran
    expect(describeReceived(Object.create(null))).toBe(' Received an instance of [Object: null prototype]');
    expect(describeReceived(null)).toBe(' Received null');
    expect(describeReceived(undefined)).toBe(' Received undefined');
    expect(describeReceived(1n << 70n)).toBe(` Received type bigint (${1n << 70n}n)`);
    expect(describeReceived(Symbol('s'))).toBe(' Received type symbol (Symbol(s))');
    expect(describeReceived('x'.repeat(40))).toBe(` Received type string ('${'x'.repeat(25)}...')`);
    expect(describeReceived(function named() {})).toBe(' Received function named');
  });

  test('options: undefined or a plain object with known keys; nothing else', () => {
    expect(validateOptions(undefined, ['a'])).toEqual({});
    expect(validateOptions({ a: 1 }, ['a'])).toEqual({ a: 1 });
    expect(validateOptions(Object.assign(Object.create(null), { a: 1 }), ['a'])).toEqual({ a: 1 });
    for (const bad of [null, 1, 'x', true, 1n, Symbol('o'), [], new Map(), () => 0]) {
      expect(() => validateOptions(bad as never, ['a'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', name: 'TypeError' }));
    }
    expect(() => validateOptions({ b: 1 } as never, ['a'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => validateOptions({ [Symbol('k')]: 1 } as never, ['a'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    let got = 0;
    const getter = Object.defineProperty({}, 'b', {
      enumerable: true,
      get() {
        got++;
        return 1;
      },
    });
    expect(() => validateOptions(getter as never, ['a'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(got).toBe(0); // the unknown key's getter is never called to show it
  });

  test("checkedOptions: the package's own already-checked options pass once more unchecked; a caller's never do", () => {
    const inner = checkedOptions({ b: 1 });
    expect(Object.isFrozen(inner)).toBe(true);
    // keys the receiver does not list would be refused: this one passes because the package made it
    expect(validateOptions(inner as never, ['a'])).toBe(inner);
    // the same shape, frozen or not, from anyone else gets the full check
    for (const same of [{ b: 1 }, Object.freeze({ b: 1 })]) {
      expect(() => validateOptions(same as never, ['a'])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
  });
});

describe('the public boundary is strict', () => {
  const framework = () => new Framework();

  test('booleans must be booleans: no truthiness', () => {
    using heap = openHeap('system', { framework: framework() });
    for (const v of [1, 'yes', 0, '', null, {}]) {
      expect(() => heap.alloc(4096, { readOnly: v as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
      expect(() => heap.alloc(4096, { cloexec: v as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    }
    using buf = heap.alloc(4096);
    expect(() => buf.dup({ cloexec: 'no' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => fromFd(buf.fd, { dup: 0 as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }),
    );
    expect(() => allocShareable(4096, { requireDmaBuf: 'true' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });

  test('options must be plain objects or undefined; primitives and null are refused', () => {
    for (const bad of [1, 'software', true, null, []]) {
      expect(() => openHeap('system', bad as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
      expect(() => listHeaps(bad as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
      expect(() => new Framework(bad as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    }
  });

  test('unknown option keys are refused (a typo is not silently ignored)', () => {
    expect(() => openHeap('system', { backnd: 'software' } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    using heap = openHeap('system', { framework: framework() });
    expect(() => heap.alloc(4096, { readonly: true } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => allocShareable(4096, { tier: ['js'] } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => new Framework({ cma: { sz: 1 } } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  test('a value whose toString throws is still described in the error, not thrown through', () => {
    const evil = {
      toString() {
        throw new Error('boom');
      },
    };
    expect(() => openHeap(evil as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => openHeap('system', { backend: evil } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    using heap = openHeap('system', { framework: framework() });
    expect(() => heap.alloc(evil as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    using buf = heap.alloc(4096);
    expect(() => buf.read(evil as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => buf.beginCpuAccess(evil as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(buf).toBeInstanceOf(DmaBuf);
  });
});

describe('each option is read once: what is checked is what is used', () => {
  // A getter (or a Proxy) could answer the check one thing and the use another: `readOnly`
  // true when checked and false when the fd's flags were made, a name valid when checked and
  // 40 bytes when set. validateOptions hands back a copy, each value read once.
  const heap = openHeap('system', { backend: 'software' });
  afterAll(() => heap.close());
  test.each([
    ['heap.alloc', (o: object) => heap.alloc(4096, o as never)],
    ['allocShareable', (o: object) => allocShareable(4096, o as never)],
  ])('%s: readOnly and name through getters are each read once, and the buffer is what they first said', (_, alloc) => {
    const reads = { readOnly: 0, name: 0 };
    const options = {
      get readOnly() {
        return reads.readOnly++ === 0; // true, then false
      },
      get name() {
        return reads.name++ === 0 ? 'frame' : 'x'.repeat(40);
      },
    };
    let buf: DmaBuf;
    try {
      buf = alloc(options) as DmaBuf;
    } catch (err) {
      // allocShareable has no readOnly: refused, having read the keys only
      expect(err).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      return;
    }
    try {
      expect(reads).toEqual({ readOnly: 1, name: 1 });
      expect({ readOnly: buf.readOnly, name: buf.info().name }).toEqual({ readOnly: true, name: 'frame' });
    } finally {
      buf.close();
    }
  });
});
