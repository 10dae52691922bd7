/**
 * Arguments: the one factory for Node-style argument errors (ERR_INVALID_ARG_TYPE,
 * ERR_INVALID_ARG_VALUE, ERR_OUT_OF_RANGE) and the generic checks built on it. The public
 * boundary (lib/validate.ts), the framework's options and the addon's own type checks
 * (registered by lib/native/load.ts, called from src/args.h) all make them here, so they
 * read the same. Messages show the offending value as Node's do, without ever running
 * code the value controls (no toString, no JSON.stringify of objects, no getters).
 */
import { types } from 'node:util';


/** A constructor's name, found without calling anything a value controls (getters, toString,
 *  toJSON); a Proxy whose traps throw is caught. undefined when there is none to tell. */
function constructorName(value: object): string | undefined {
  try {
    let proto: object | null = Object.getPrototypeOf(value);
    if (proto === null) return '[Object: null prototype]';
    while (proto !== null) {
      const ctor = Object.getOwnPropertyDescriptor(proto, 'constructor')?.value;
      if (typeof ctor === 'function') {
        const name = Object.getOwnPropertyDescriptor(ctor, 'name')?.value;
        if (typeof name === 'string' && name !== '') return name;
      }
      proto = Object.getPrototypeOf(proto);
    }
  } catch {
    // a hostile Proxy: say nothing more
  }
  return undefined;
}

function quoted(s: string): string {
  const short = s.length > 28 ? `${s.slice(0, 25)}...` : s;
  return `'${JSON.stringify(short).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
}

/**
 * How an argument error shows the value it got, as Node's own do (" Received type number (1.5)",
 * " Received an instance of Foo", " Received null"), never running the value's code.
 */
export function describeReceived(value: unknown): string {
  if (value === null || value === undefined) return ` Received ${value}`;
  if (typeof value === 'function') {
    let name: unknown;
    try {
      name = Object.getOwnPropertyDescriptor(value, 'name')?.value;
    } catch {
      name = undefined;
    }
    return ` Received function ${typeof name === 'string' && name ? name : '<anonymous>'}`;
  }
  if (typeof value === 'object') {
    const name = constructorName(value);
    return name ? ` Received an instance of ${name}` : ' Received an object';
  }
  let shown: string;
  switch (typeof value) {
    case 'string':
      shown = quoted(value);
      break;
    case 'bigint':
      shown = `${value}n`;
      break;
    case 'symbol':
      try {
        shown = Symbol.prototype.toString.call(value);
      } catch {
        shown = 'Symbol()';
      }
      break;
    default:
      shown = String(value); // number, boolean: no user code runs
  }
  return ` Received type ${typeof value} (${shown})`;
}

/** "argument" for a parameter, "property" for an option (a dotted name), as Node words it */
const noun = (name: string) => (name.includes('.') ? 'property' : 'argument');

export type ArgTypeError = TypeError & { code: 'ERR_INVALID_ARG_TYPE' };
export type ArgValueError = TypeError & { code: 'ERR_INVALID_ARG_VALUE' };
export type ArgRangeError = RangeError & { code: 'ERR_OUT_OF_RANGE' };

/** ERR_INVALID_ARG_TYPE: `The "name" argument must be <expected>. Received ...` */
export function invalidArgType(name: string, expected: string, actual: unknown): ArgTypeError {
  const err = new TypeError(`The "${name}" ${noun(name)} must be ${expected}.${describeReceived(actual)}`) as ArgTypeError;
  err.code = 'ERR_INVALID_ARG_TYPE';
  return err;
}

/** ERR_INVALID_ARG_VALUE: `The argument 'name' <reason>. Received ...` */
export function invalidArgValue(name: string, value: unknown, reason = 'is invalid'): ArgValueError {
  const err = new TypeError(`The ${noun(name)} '${name}' ${reason}.${describeReceived(value)}`) as ArgValueError;
  err.code = 'ERR_INVALID_ARG_VALUE';
  return err;
}

/** ERR_OUT_OF_RANGE: `The value of "name" is out of range. It must be <range>. Received ...` */
export function outOfRange(name: string, range: string, value: unknown): ArgRangeError {
  const received = typeof value === 'number' || typeof value === 'bigint' ? ` Received ${typeof value === 'bigint' ? `${value}n` : String(value)}` : describeReceived(value);
  const err = new RangeError(`The value of "${name}" is out of range. It must be ${range}.${received}`) as ArgRangeError;
  err.code = 'ERR_OUT_OF_RANGE';
  return err;
}


/** A boolean option: true, false, or absent (undefined gives `fallback`). No truthiness. */
export function validateBoolean(value: unknown, what: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(what, 'of type boolean', value);
  return value;
}

/** An array argument. A Proxy (revoked, or trapping) is no array of ours: Array.isArray and
 *  every read after it would run into it. */
export function validateArray(value: unknown, what: string, expected: string): asserts value is unknown[] {
  if (types.isProxy(value) || !Array.isArray(value)) throw invalidArgType(what, expected, value);
}

/** An AbortSignal option, or undefined. A Proxy is refused before instanceof could run (or, revoked, throw in) its traps. */
export function validateAbortSignal(value: unknown, what: string): AbortSignal | undefined {
  if (value === undefined) return undefined;
  if (types.isProxy(value) || !(value instanceof AbortSignal)) throw invalidArgType(what, 'an instance of AbortSignal', value);
  return value;
}

/** An integer option within [min, max]. */
export function validateInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidArgType(what, 'of type number', value);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw outOfRange(what, `an integer >= ${min} && <= ${max}`, value);
  return value;
}

/** options objects the package made itself, of values already checked: see checkedOptions */
const checked = new WeakSet<object>();

/**
 * Internal: options the package builds from a public call's options that validateOptions and
 * the value checks already passed, to hand to another entry point (allocShareable to the heap's
 * alloc), so that they are checked once per public call, not again at each layer. Frozen (no
 * one adds to them afterwards), and never given to a caller: a caller's object is never in the
 * set, so it always gets the full check.
 */
export function checkedOptions<T extends object>(options: T): Readonly<T> {
  checked.add(Object.freeze(options));
  return options;
}

/**
 * An options argument: undefined means none; otherwise a plain object (its prototype
 * Object.prototype or null) whose own keys are all in `keys` (when given). Anything else
 * — a primitive, null, an array, a class instance — is ERR_INVALID_ARG_TYPE; an unknown
 * key is ERR_INVALID_ARG_VALUE (a typo must not be silently ignored).
 */
export function validateOptions<T extends object>(options: T | undefined, keys?: readonly string[] | string, what = 'options'): T {
  if (typeof keys === 'string') [what, keys] = [keys, undefined];
  if (options === undefined) return {} as T;
  if (checked.has(options)) return options;
  let plain = false;
  // Reflect.ownKeys' answer, in two parts: it made ~390 B of garbage per call, these ~90 B
  let names: string[] = [];
  let symbols: symbol[] = [];
  try {
    if (typeof options === 'object' && options !== null && !Array.isArray(options)) {
      const proto = Object.getPrototypeOf(options);
      plain = proto === Object.prototype || proto === null;
      if (plain && keys) {
        names = Object.getOwnPropertyNames(options);
        symbols = Object.getOwnPropertySymbols(options);
      }
    }
  } catch {
    plain = false; // a Proxy whose traps throw
  }
  if (!plain) throw invalidArgType(what, 'a plain object or undefined', options);
  if (keys) {
    for (const key of names) if (!keys.includes(key)) throw unknownOption(options, key, keys, what);
    if (symbols.length > 0) throw unknownOption(options, symbols[0], keys, what);
    // A copy, each value read once: what is checked is what is used. The caller's object may
    // have getters (or be a Proxy) that answer the check one thing and the use another: a
    // `readOnly` true when checked and false when the flags were made opened a writable fd.
    const copy = {} as Record<string, unknown>;
    for (const key of names) copy[key] = (options as Record<string, unknown>)[key];
    return copy as T;
  }
  return options;
}

function unknownOption(options: object, key: string | symbol, keys: readonly string[], what: string): Error {
  const name = typeof key === 'symbol' ? `${what}[${Symbol.prototype.toString.call(key)}]` : `${what}.${key}`;
  let value: unknown;
  try {
    value = Reflect.getOwnPropertyDescriptor(options, key)?.value; // never a getter's call
  } catch {
    value = undefined;
  }
  return invalidArgValue(name, value, `is not an option here (the options are ${keys.join(', ')})`);
}
