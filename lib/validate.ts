/**
 * The public boundary's checks: every argument a user passes is checked here, once, before
 * any system call, with the argument errors of lib/errors.ts.
 */
import { invalidArgType, invalidArgValue, outOfRange } from './args';
import { DmaHeapError } from './errors';
import { physicalMemory } from './host';
import { U64_MAX } from './uapi';

/**
 * A heap name must name one node directly under /dev/dma_heap and nothing else:
 * non-empty, no '/', no NUL, not '.' or '..'.
 */
/** one entry of /dev/dma_heap: no '/', NUL, '.' or '..' */
export const isHeapName = (name: string): boolean =>
  name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');

export function validateHeapName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string') throw invalidArgType(what, 'of type string', name);
  if (!isHeapName(name)) {
    throw invalidArgValue(what, name, "is not a heap name: a heap name is one entry of /dev/dma_heap (no '/', NUL, '.' or '..')");
  }
  return name;
}

/**
 * A buffer size: a positive integer number or bigint that fits a u64, and no more
 * than this machine's physical memory. The last rule is not the kernel's: a real
 * 6.12 system heap keeps allocating until the OOM killer ends the process (measured).
 */
export function validateSize(size: unknown, ctx: { heap?: string; path?: string } = {}): bigint {
  let len: bigint;
  if (typeof size === 'number') {
    if (!Number.isSafeInteger(size)) {
      throw outOfRange('size', Number.isInteger(size) ? 'a safe integer (pass a bigint for more)' : 'an integer', size);
    }
    len = BigInt(size);
  } else if (typeof size === 'bigint') {
    len = size;
  } else {
    throw invalidArgType('size', 'of type number or bigint', size);
  }
  if (len <= 0n) throw outOfRange('size', '> 0', size);
  if (len > U64_MAX) throw outOfRange('size', `<= ${U64_MAX} (the kernel's 64-bit length)`, size);
  if (len > physicalMemory()) {
    throw new DmaHeapError('ENOMEM', 'ioctl', {
      ...ctx,
      message: `refusing to allocate ${len} bytes: more than this machine's ${physicalMemory()} bytes of RAM (the kernel would OOM-kill instead of failing)`,
    });
  }
  return len;
}

/** Offsets and lengths inside a buffer: safe non-negative integers within `limit`. */
export function validateRange(offset: unknown, length: unknown, limit: number): { offset: number; length: number } {
  if (typeof offset !== 'number') throw invalidArgType('offset', 'of type number', offset);
  if (!Number.isSafeInteger(offset) || offset < 0) throw outOfRange('offset', 'a non-negative integer', offset);
  if (typeof length !== 'number') throw invalidArgType('length', 'of type number', length);
  if (!Number.isSafeInteger(length) || length < 0) throw outOfRange('length', 'a non-negative integer', length);
  if (offset + length > limit) throw outOfRange('offset + length', `<= the buffer's ${limit} bytes`, offset + length);
  return { offset, length };
}

export const CPU_ACCESS = ['read', 'write', 'readwrite'] as const;
/**
 * What the CPU does inside an access bracket: 'read', 'write' or 'readwrite'.
 *
 * @useDeclaredType
 */
export type CpuAccess = (typeof CPU_ACCESS)[number];

export function validateAccess(access: unknown): CpuAccess {
  if (!CPU_ACCESS.includes(access as CpuAccess)) {
    throw invalidArgValue('access', access, `must be one of ${CPU_ACCESS.map((a) => `'${a}'`).join(', ')}`);
  }
  return access as CpuAccess;
}

/** String.prototype.isWellFormed (V8 11.1+: Node 20), without assuming the typings know it */
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** dma-buf names: at most 31 bytes (DMA_BUF_NAME_LEN 32 with the NUL), no NUL inside. */
export function validateBufferName(name: unknown, what = 'name'): string {
  if (typeof name !== 'string') throw invalidArgType(what, 'of type string', name);
  if (name.includes('\0')) throw invalidArgValue(what, name, 'must not contain NUL');
  // a lone surrogate has no UTF-8: it would be set as U+FFFD and read back as another name
  if (!isWellFormed(name)) throw invalidArgValue(what, name, 'must be well-formed UTF-16 (no lone surrogate)');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > 31) throw outOfRange(`${what} (UTF-8 bytes)`, "<= 31 (the kernel's DMA_BUF_NAME_LEN)", bytes);
  return name;
}

export { validateBoolean, validateInteger, validateOptions } from './args';
