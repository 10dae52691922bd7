import { DmaHeapError } from './errors';
import { physicalMemory } from './host';
import { U64_MAX } from './uapi';

/** Node's own shape for bad arguments: TypeError ERR_INVALID_ARG_TYPE, RangeError ERR_OUT_OF_RANGE. */
function typeError(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_TYPE' });
}
function rangeError(message: string): RangeError {
  return Object.assign(new RangeError(message), { code: 'ERR_OUT_OF_RANGE' });
}

/**
 * A heap name must name one node directly under /dev/dma_heap and nothing else:
 * non-empty, no '/', no NUL, not '.' or '..'.
 */
export function validateHeapName(name: unknown): string {
  if (typeof name !== 'string') throw typeError(`heap name must be a string, got ${typeof name}`);
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw Object.assign(new TypeError(`invalid heap name ${JSON.stringify(name)}: a heap name is one entry of /dev/dma_heap (no '/', NUL, '.' or '..')`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
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
    if (!Number.isInteger(size)) throw rangeError(`size must be an integer, got ${size}`);
    if (!Number.isSafeInteger(size)) throw rangeError(`size ${size} is not exact as a number; pass a bigint`);
    len = BigInt(size);
  } else if (typeof size === 'bigint') {
    len = size;
  } else {
    throw typeError(`size must be a number or bigint, got ${size === null ? 'null' : typeof size}`);
  }
  if (len <= 0n) throw rangeError(`size must be > 0, got ${len}`);
  if (len > U64_MAX) throw rangeError(`size ${len} does not fit the kernel's 64-bit length`);
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
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw rangeError(`offset must be a non-negative integer, got ${String(offset)}`);
  }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
    throw rangeError(`length must be a non-negative integer, got ${String(length)}`);
  }
  if (offset + length > limit) throw rangeError(`range [${offset}, ${offset + length}) is outside the buffer's ${limit} bytes`);
  return { offset, length };
}

export const CPU_ACCESS = ['read', 'write', 'readwrite'] as const;
export type CpuAccess = (typeof CPU_ACCESS)[number];

export function validateAccess(access: unknown): CpuAccess {
  if (!CPU_ACCESS.includes(access as CpuAccess)) {
    throw Object.assign(new TypeError(`CPU access must be one of ${CPU_ACCESS.join(', ')}, got ${String(access)}`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  return access as CpuAccess;
}

/** dma-buf names: at most 31 bytes (DMA_BUF_NAME_LEN 32 with the NUL), no NUL inside. */
export function validateBufferName(name: unknown): string {
  if (typeof name !== 'string') throw typeError(`buffer name must be a string, got ${typeof name}`);
  if (name.includes('\0')) throw Object.assign(new TypeError('buffer name must not contain NUL'), { code: 'ERR_INVALID_ARG_VALUE' });
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > 31) throw rangeError(`buffer name is ${bytes} bytes; the kernel keeps at most 31 (DMA_BUF_NAME_LEN)`);
  return name;
}

/** An options argument: undefined or null mean none; anything but an object is a TypeError. */
export function validateOptions<T extends object>(options: T | null | undefined, what = 'options'): T {
  if (options === undefined || options === null) return {} as T;
  if (typeof options !== 'object') throw typeError(`${what} must be an object, got ${typeof options}`);
  return options;
}
