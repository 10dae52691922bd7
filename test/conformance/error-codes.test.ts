/**
 * Error codes are typed (issue 18): DmaHeapError's `code` is an ErrnoCode, DmaBufStateError's a
 * DmaBufStateErrorCode, and isDmaHeapError(err, code) narrows by both class and code. The
 * unions must be exact: every code the library can throw is in them (the sources are read here
 * for every literal code, so a new one cannot be thrown without joining its union), and every
 * errno name the addon or Node can report is an ErrnoCode.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { getSystemErrorName } from 'node:util';
import {
  DMA_BUF_STATE_ERROR_CODES,
  DmaBufStateError,
  DmaHeapError,
  ERRNO_CODES,
  addonMissing,
  isDmaHeapError,
  type DmaHeapErrorCode,
  type ErrnoCode,
} from '../../lib/errors';
import { Framework } from '../../lib/framework';
import { openHeap } from '../../lib/heap';
import { CHANNEL_ERROR_CODES, DmaBufChannelError } from '../../lib/share/errors';
import { backends } from '../helpers/backends';
import { testIf } from '../helpers/skip';

const LIB = path.resolve(__dirname, '../../lib');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    return statSync(file).isDirectory() ? sources(file) : file.endsWith('.ts') ? [file] : [];
  });
}

/** the code of a source file, without its comments (examples there are not thrown) */
function code(file: string): string {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(\*|\/\*)/.test(line))
    .map((line) => line.replace(/(^|\s)\/\/.*$/, ''))
    .join('\n');
}

/** every quoted code-looking literal in lib/'s code, with the file of each occurrence */
function literals(pattern: RegExp): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of sources(LIB)) {
    for (const m of code(file).matchAll(pattern)) {
      found.set(m[1], [...(found.get(m[1]) ?? []), path.relative(LIB, file)]);
    }
  }
  return found;
}

const packageCodes = new Set<string>([...ERRNO_CODES, ...DMA_BUF_STATE_ERROR_CODES, ...CHANNEL_ERROR_CODES, 'ERR_DMA_HEAP_NO_ADDON']);

describe('the code unions are exact', () => {
  test("every ERR_ code in lib/ is in DmaHeapErrorCode, or is Node's (argument errors, not conditions to handle)", () => {
    const notPackage: Record<string, string> = {
      ERR_INVALID_ARG_TYPE: "Node's argument error",
      ERR_INVALID_ARG_VALUE: "Node's argument error",
      ERR_OUT_OF_RANGE: "Node's argument error",
      ERR_ILLEGAL_CONSTRUCTOR: "Node's, for a class users may not construct",
      ERR_PARSE_ARGS: "the CLI's, from util.parseArgs; never thrown by the API",
      ERR_PARSE_ARGS_UNKNOWN_OPTION: "the CLI's, from util.parseArgs; never thrown by the API",
      ERR_DMA_HEAP_READ_ONLY_MAPPING: "the addon's guard against a read-only external ArrayBuffer; DmaBuf never asks for one",
    };
    const found = literals(/'(ERR_[A-Z0-9_]+)'/g);
    expect(found.get('ERR_DMA_BUF_CLOSED')).toEqual(expect.arrayContaining(['dmabuf.ts'])); // the scan sees the code
    const stray = [...found].filter(([code]) => !packageCodes.has(code) && !(code in notPackage));
    expect(stray).toEqual([]);
  });

  test('every errno-looking literal in lib/ is an ErrnoCode (a misspelt comparison would never match)', () => {
    const notErrno = new Set(['ERROR']); // the CLI's label for an error without a code
    const found = literals(/'(E[A-Z0-9]{2,})'/g);
    expect(found.has('ENOTTY')).toBe(true); // the scan sees the code (dmabuf.ts)
    const stray = [...found].filter(([code]) => !(ERRNO_CODES as readonly string[]).includes(code) && !notErrno.has(code));
    expect(stray).toEqual([]);
  });

  test('every state and channel code the union lists is thrown somewhere (no dead members)', () => {
    const used = literals(/'(ERR_[A-Z0-9_]+)'/g);
    // once in its union's list, at least once more where it is thrown
    const dead = [...DMA_BUF_STATE_ERROR_CODES, ...CHANNEL_ERROR_CODES].filter((c) => (used.get(c)?.length ?? 0) < 2);
    expect(dead).toEqual([]);
  });

  const linux = process.platform === 'linux' || process.platform === 'android';
  testIf(linux, 'the errno numbering checked is Linux\'s')("every errno name libuv gives a kernel errno (the addon's and Node's names) is an ErrnoCode", () => {
    const errnos = ERRNO_CODES as readonly string[];
    const missing: string[] = [];
    for (let n = 1; n < 512; n++) {
      const name = getSystemErrorName(-n);
      if (!name.startsWith('Unknown') && !errnos.includes(name)) missing.push(`${n}: ${name}`);
    }
    for (const name of Object.keys(constants.errno)) if (!errnos.includes(name)) missing.push(name);
    expect(missing).toEqual([]);
  });

  test('the three unions do not overlap: a code names one class', () => {
    const all = [...ERRNO_CODES, ...DMA_BUF_STATE_ERROR_CODES, ...CHANNEL_ERROR_CODES, 'ERR_DMA_HEAP_NO_ADDON'];
    expect(new Set(all).size).toBe(all.length);
  });
});

describe('isDmaHeapError(err, code)', () => {
  test.each(backends())('$label: a real ENOENT from openHeap is a DmaHeapError it narrows to', (backend) => {
    let caught: unknown;
    try {
      openHeap('no-such-heap', backend.options());
    } catch (err) {
      caught = err;
    }
    expect(isDmaHeapError(caught, 'ENOENT')).toBe(true);
    expect(isDmaHeapError(caught)).toBe(true);
    expect(isDmaHeapError(caught, 'ENOMEM')).toBe(false);
    if (isDmaHeapError(caught, 'ENOENT')) {
      // narrowed: DmaHeapError's fields, code the literal
      const code: 'ENOENT' = caught.code;
      expect([code, caught.syscall, caught.heap]).toEqual(['ENOENT', 'open', 'no-such-heap']);
    }
  });

  test('a state error: by code and class, with the code narrowed', () => {
    const framework = new Framework();
    const heap = openHeap('system', { framework });
    heap.close();
    let caught: unknown;
    try {
      heap.alloc(4096);
    } catch (err) {
      caught = err;
    }
    framework.dispose();
    expect(isDmaHeapError(caught, 'ERR_DMA_HEAP_CLOSED')).toBe(true);
    expect(caught).toBeInstanceOf(DmaBufStateError);
    expect(isDmaHeapError(caught, 'ERR_DMA_BUF_CLOSED')).toBe(false);
  });

  test('channel errors and the missing addon', () => {
    const refused = new DmaBufChannelError('ERR_DMA_HEAP_BAD_MESSAGE', 'malformed', 'bad');
    expect(isDmaHeapError(refused, 'ERR_DMA_HEAP_BAD_MESSAGE')).toBe(true);
    if (isDmaHeapError(refused, 'ERR_DMA_HEAP_BAD_MESSAGE')) expect(refused.reason).toBe('malformed');
    expect(isDmaHeapError(refused, 'ERR_DMA_HEAP_CHANNEL_CLOSED')).toBe(false);
    const noAddon = addonMissing('udmabuf', 'disabled');
    expect(isDmaHeapError(noAddon, 'ERR_DMA_HEAP_NO_ADDON')).toBe(true);
    expect(isDmaHeapError(noAddon)).toBe(true);
  });

  test("the right code on the wrong class is not ours: Node's own ENOENT, a look-alike state error", () => {
    let nodeError: unknown;
    try {
      readFileSync('/nonexistent/dma-heap');
    } catch (err) {
      nodeError = err;
    }
    expect((nodeError as { code?: string }).code).toBe('ENOENT');
    expect(isDmaHeapError(nodeError, 'ENOENT')).toBe(false);
    expect(isDmaHeapError(nodeError)).toBe(false);
    expect(isDmaHeapError(Object.assign(new Error('x'), { code: 'ERR_DMA_BUF_CLOSED' }), 'ERR_DMA_BUF_CLOSED')).toBe(false);
    expect(isDmaHeapError(new DmaHeapError('EIO', 'poll'), 'ERR_DMA_BUF_CLOSED')).toBe(false);
  });

  test('anything else is false, never a throw: primitives, null, a Proxy (its traps do not run)', () => {
    const traps: string[] = [];
    const proxy = new Proxy(new DmaHeapError('EIO', 'poll'), {
      get: (t, k, r) => (traps.push(String(k)), Reflect.get(t, k, r)),
      getPrototypeOf: (t) => (traps.push('getPrototypeOf'), Reflect.getPrototypeOf(t)),
    });
    for (const v of [undefined, null, 0, 'EIO', proxy]) {
      expect(isDmaHeapError(v, 'EIO')).toBe(false);
      expect(isDmaHeapError(v)).toBe(false);
    }
    expect(traps).toEqual([]);
  });

  test('a misspelt code does not compile, and from JavaScript throws ERR_INVALID_ARG_VALUE instead of answering false for ever', () => {
    const err = new DmaHeapError('ENOMEM', 'ioctl');
    // @ts-expect-error: no such errno
    expect(() => isDmaHeapError(err, 'ENOMEN')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    // @ts-expect-error: Node's argument codes are not dma-heap's
    expect(() => isDmaHeapError(err, 'ERR_INVALID_ARG_TYPE')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    // compile-time: the fields are typed by their unions
    // @ts-expect-error: not an ErrnoCode
    const bad: ErrnoCode = 'ENOMEMORY';
    const any: DmaHeapErrorCode = 'ERR_SYNC_FILE_CLOSED';
    // @ts-expect-error: DmaBufStateError takes only its own codes
    new DmaBufStateError('ERR_DMA_BUF_CLOSD', 'closed');
    expect([bad, any]).toHaveLength(2);
  });
});
