/**
 * The adversarial suite's tools: a small seeded generator (no dependency: the suite needs
 * reproducible streams of hostile values, not shrinking), the hostile values themselves,
 * and accounting of what a process holds (fds, mappings) so a leak shows as a number.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { types } from 'node:util';

/** mulberry32: 32-bit state, good enough to spread inputs; the same seed replays a run. */
export class Rng {
  #s: number;
  constructor(readonly seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** The seed of this run: DMA_HEAP_FUZZ_SEED replays one; printed by every suite that uses it. */
export function fuzzSeed(): number {
  const env = process.env.DMA_HEAP_FUZZ_SEED;
  return env !== undefined ? Number(env) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** Thrown by hostile getters and Proxy traps: the caller's own code failing, which may propagate. */
export class GetterSentinel extends Error {
  constructor() {
    super('hostile getter');
    this.name = 'GetterSentinel';
  }
}

/** Thrown by hostile toString/valueOf/Symbol.toPrimitive: rendering a value in a message must never run into it. */
export class ToStringSentinel extends Error {
  constructor() {
    super('hostile toString');
    this.name = 'ToStringSentinel';
  }
}

const throwsToString = () => {
  throw new ToStringSentinel();
};

/** An object whose every conversion to a primitive throws. */
export function poisonedPrimitive(): object {
  return { toString: throwsToString, valueOf: throwsToString, [Symbol.toPrimitive]: throwsToString, toJSON: throwsToString };
}

/** An object whose listed keys (and any other read through a Proxy) throw when read. */
export function throwingGetters(keys: readonly string[]): object {
  const o: Record<string, unknown> = {};
  for (const k of keys) {
    Object.defineProperty(o, k, {
      enumerable: true,
      get() {
        throw new GetterSentinel();
      },
    });
  }
  return o;
}

function trapAll(): ProxyHandler<object> {
  const t = () => {
    throw new GetterSentinel();
  };
  return { get: t, has: t, ownKeys: t, getOwnPropertyDescriptor: t, getPrototypeOf: t, set: t, defineProperty: t, deleteProperty: t, apply: t };
}

/** Hostile values of every JS type, made fresh on each call (a revoked Proxy stays revoked). */
export const HOSTILE: readonly [string, () => unknown][] = [
  ['undefined', () => undefined],
  ['null', () => null],
  ['true', () => true],
  ['false', () => false],
  ['0', () => 0],
  ['-0', () => -0],
  ['1', () => 1],
  ['-1', () => -1],
  ['0.5', () => 0.5],
  ['NaN', () => NaN],
  ['Infinity', () => Infinity],
  ['-Infinity', () => -Infinity],
  ['2**31', () => 2 ** 31],
  ['2**32', () => 2 ** 32],
  ['2**32+4096', () => 2 ** 32 + 4096],
  ['2**53', () => 2 ** 53],
  ['2**53+2', () => 2 ** 53 + 2],
  ['MAX_VALUE', () => Number.MAX_VALUE],
  ['-2**63', () => -(2 ** 63)],
  ['0n', () => 0n],
  ['1n', () => 1n],
  ['-1n', () => -1n],
  ['4096n', () => 4096n],
  ['2n**64n', () => 2n ** 64n],
  ['2n**64n-1n', () => 2n ** 64n - 1n],
  ['2n**40n', () => 2n ** 40n],
  ["''", () => ''],
  ["'0'", () => '0'],
  ["'4096'", () => '4096'],
  ["'false'", () => 'false'],
  ["'true'", () => 'true'],
  ["'system'", () => 'system'],
  ["'../x'", () => '../x'],
  ["'a\\0b'", () => 'a\0b'],
  ["'x'.repeat(300)", () => 'x'.repeat(300)],
  ['emoji string', () => '\u{1F600}'.repeat(10)],
  ['lone surrogate', () => '\ud800'],
  ['Symbol()', () => Symbol('hostile')],
  ['Symbol.iterator', () => Symbol.iterator],
  ['{}', () => ({})],
  ['[]', () => []],
  ['[4096]', () => [4096]],
  ['Object.create(null)', () => Object.create(null)],
  ['Date', () => new Date(0)],
  ['RegExp', () => /x/],
  ['Map', () => new Map([['name', 'x']])],
  ['Promise', () => Promise.resolve(4096)],
  ['function', () => function f() {}],
  ['class', () => class C {}],
  ['Uint8Array(4)', () => new Uint8Array(4)],
  ['Uint16Array(4)', () => new Uint16Array(4)],
  ['Float64Array(1)', () => new Float64Array(1)],
  ['DataView', () => new DataView(new ArrayBuffer(4))],
  ['ArrayBuffer(8)', () => new ArrayBuffer(8)],
  ['SharedArrayBuffer(8)', () => new SharedArrayBuffer(8)],
  ['Buffer(1)', () => Buffer.alloc(1)],
  ['new Number(4096)', () => new Number(4096)],
  ["new String('system')", () => new String('system')],
  ['new Boolean(false)', () => new Boolean(false)],
  ['valueOf 4096', () => ({ valueOf: () => 4096, toString: () => '4096' })],
  ['poisoned primitive', poisonedPrimitive],
  ['throwing getters', () => throwingGetters(['name', 'readOnly', 'cloexec', 'dup', 'type', 'heap', 'backend', 'framework', 'length', 'size'])],
  ['Proxy trapping all', () => new Proxy({}, trapAll())],
  ['Proxy over a poisoned primitive', () => new Proxy(poisonedPrimitive(), {})],
  ['revoked Proxy', () => {
    const r = Proxy.revocable({}, {});
    r.revoke();
    return r.proxy;
  }],
  ['frozen {}', () => Object.freeze({})],
  ['Error', () => new Error('x')],
];

/** what kind of value an argument is, for deciding whether a call was entitled to fail with a type error */
export type Kind = 'size' | 'int' | 'bool' | 'string' | 'path' | 'fd' | 'access' | 'bytes' | 'function' | 'intOrString' | 'any';

/** Node's codes for bad arguments */
export const ARG_CODES = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE']);

/** true when `v` is of the JS type an argument of `kind` takes (its range may still be wrong) */
export function typeOk(kind: Kind, v: unknown, optional: boolean): boolean {
  if (v === undefined) return optional;
  switch (kind) {
    case 'size':
      return typeof v === 'number' || typeof v === 'bigint';
    case 'int':
    case 'fd':
      return typeof v === 'number';
    case 'bool':
      return typeof v === 'boolean';
    case 'string':
    case 'path':
    case 'access':
      return typeof v === 'string';
    case 'bytes':
      return !types.isProxy(v) && v instanceof Uint8Array;
    case 'function':
      return typeof v === 'function';
    case 'intOrString':
      return typeof v === 'number' || typeof v === 'string';
    case 'any':
      return true;
  }
}

/** a plain object: what an options argument must be (no Proxy, no class instance, no array) */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || types.isProxy(v) || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** the kinds of a function's options */
export type OptionSchema = Record<string, Kind>;

/**
 * Generate an options argument: mostly plain objects with some known keys (valid or hostile
 * values), sometimes an unknown key, a throwing getter, or any hostile value instead.
 */
export function genOptions(rng: Rng, schema: OptionSchema, valid: Partial<Record<string, () => unknown>>): unknown {
  if (rng.chance(0.25)) return rng.pick(HOSTILE)[1]();
  if (rng.chance(0.1)) return undefined;
  const o: Record<string, unknown> = rng.chance(0.1) ? Object.create(null) : {};
  for (const key of Object.keys(schema)) {
    if (!rng.chance(0.5)) continue;
    const good = valid[key];
    const r = rng.next();
    if (good && r < 0.5) o[key] = good();
    else if (r < 0.9) o[key] = rng.pick(HOSTILE)[1]();
    else {
      Object.defineProperty(o, key, {
        enumerable: true,
        get() {
          throw new GetterSentinel();
        },
      });
    }
  }
  if (rng.chance(0.1)) o[rng.pick(['nmae', 'readonly', 'Dup', '__proto__x', 'constructor'])] = true;
  return o;
}

/** whether an options argument generated above is entitled to be accepted (by type) */
export function optionsTypeOk(v: unknown, schema: OptionSchema): boolean {
  if (v === undefined) return true;
  if (!isPlainObject(v)) return false;
  for (const key of Object.keys(v)) {
    const kind = schema[key];
    if (kind === undefined) return false; // unknown key
    const d = Object.getOwnPropertyDescriptor(v, key)!;
    if (d.get) continue; // a throwing getter: either its error propagates or the call fails typed
    if (!typeOk(kind, d.value, true)) return false;
  }
  return true;
}

/** an own data property's value, never running a getter or a Proxy trap (undefined otherwise) */
export function dataValue(o: unknown, key: string): unknown {
  if (o === null || typeof o !== 'object' || types.isProxy(o)) return undefined;
  const d = Object.getOwnPropertyDescriptor(o, key);
  return d && !d.get ? d.value : undefined;
}

/** an array (no Proxy) whose every element passes `test` */
export function isArrayOf(v: unknown, test: (x: unknown) => boolean): boolean {
  return !types.isProxy(v) && Array.isArray(v) && v.every(test);
}

/** a value of `kind`, valid or hostile */
export function gen(rng: Rng, valid: () => unknown): unknown {
  return rng.chance(0.35) ? valid() : rng.pick(HOSTILE)[1]();
}

/** A safe rendering of any value, for test failure messages (never calls user code). */
export function show(v: unknown): string {
  if (types.isProxy(v)) return 'Proxy';
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    case 'bigint':
      return `${v}n`;
    case 'symbol':
      return v.description === undefined ? 'Symbol()' : `Symbol(${v.description})`;
    case 'function':
      return 'function';
    case 'object': {
      if (v === null) return 'null';
      if (Array.isArray(v)) return `array(${v.length})`;
      const proto = Object.getPrototypeOf(v);
      const name = proto === null ? 'null-proto' : (proto.constructor?.name ?? 'object');
      if (proto !== null && proto !== Object.prototype) return name;
      const keys = Object.getOwnPropertyNames(v).map((k) => {
        const d = Object.getOwnPropertyDescriptor(v, k)!;
        return `${k}:${d.get ? 'getter' : show(d.value)}`;
      });
      return `${name}{${keys.join(',')}}`;
    }
    default:
      return String(v);
  }
}

/** Whether an error is typed the way the package promises (a code, and a known name). */
const NAMES = new Set(['TypeError', 'RangeError', 'Error', 'DmaHeapError', 'DmaBufStateError', 'DmaBufChannelError']);
export function typedProblem(err: unknown): string | undefined {
  if (err instanceof ToStringSentinel) return 'a hostile toString ran while rendering an error';
  // jest runs tests in a vm context: errors made by Node or the addon are another realm's Error
  if (!(err instanceof Error) && !types.isNativeError(err)) return `a non-Error was thrown: ${show(err)}`;
  const e = err as Error;
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^(ERR_[A-Z0-9_]+|E[A-Z0-9]+)$/.test(code)) return `${e.name} without a code: ${e.message}`;
  if (!NAMES.has(e.name)) return `unexpected error name ${e.name}`;
  return undefined;
}

// ---- what the process holds ----

/** fds open now, with what they point at */
export function fdTable(): Map<number, string> {
  const out = new Map<number, string>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      out.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // the readdir's own fd, closed by now
    }
  }
  return out;
}

/** mappings of buffer memory now (memfd and dma-buf mappings: what this package makes) */
export function bufferMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => /\/memfd:|\/dmabuf:|anon_inode:dmabuf|\/dev\/dma_heap/.test(l)).length;
}

export interface Holdings {
  fds: Map<number, string>;
  maps: number;
}

export function holdings(): Holdings {
  return { fds: fdTable(), maps: bufferMappings() };
}

/** what is held now that was not at `before`: '' if nothing */
export function leaked(before: Holdings): string {
  const now = holdings();
  const fds = [...now.fds].filter(([fd, target]) => before.fds.get(fd) !== target).map(([fd, t]) => `fd ${fd} -> ${t}`);
  const maps = now.maps - before.maps;
  return [...fds, ...(maps > 0 ? [`${maps} more buffer mapping(s)`] : [])].join('; ');
}
