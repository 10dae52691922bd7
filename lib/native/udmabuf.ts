import { existsSync, readFileSync } from 'node:fs';
import type { Addon } from './addon';
import { DmaHeapError, withContext } from '../errors';
import { UDMABUF_SIZE_LIMIT_DEFAULT } from '../uapi';

export const UDMABUF_PATH = '/dev/udmabuf';

/**
 * The per-buffer cap the udmabuf module enforces (size_limit_mb, 64 MiB unless changed).
 *
 * @returns the cap in bytes: /sys/module/udmabuf/parameters/size_limit_mb, or the 64 MiB default
 * when that cannot be read (no module loaded, not Linux)
 * @throws Nothing: an unreadable parameter gives the default.
 * @example
 * ```ts
 * import { udmabufSizeLimit } from 'dma-heap';
 * console.log(`udmabuf makes buffers of up to ${udmabufSizeLimit()} bytes`);
 * ```
 */
export function udmabufSizeLimit(): number {
  try {
    return Number(readFileSync('/sys/module/udmabuf/parameters/size_limit_mb', 'utf8').trim()) * 1024 * 1024;
  } catch {
    return UDMABUF_SIZE_LIMIT_DEFAULT;
  }
}

export function hasUdmabuf(): boolean {
  return existsSync(UDMABUF_PATH);
}

/**
 * A real dma-buf made from a memfd, as libcamera does (memfd_create with sealing, ftruncate,
 * F_SEAL_SHRINK, then UDMABUF_CREATE; the memfd is closed, the dma-buf holds its pages), in
 * one addon call on the held /dev/udmabuf fd `dev`. `len` is validated and page-aligned by the
 * caller. The returned fd is owned by this thread's environment at once. The module's per-buffer
 * cap (size_limit_mb) is read only when the kernel refused, to say why.
 */
export function createUdmabuf(addon: Addon, dev: number, len: bigint, cloexec: boolean): number {
  try {
    return addon.udmabufBuffer(dev, 'dma-heap:udmabuf', Number(len), cloexec);
  } catch (err) {
    // udmabuf refuses more than size_limit_mb with EINVAL: read the cap then, to say so
    if ((err as { code?: string }).code === 'EINVAL') {
      const limit = udmabufSizeLimit();
      if (len > BigInt(limit)) {
        throw new DmaHeapError('EINVAL', 'ioctl', {
          path: UDMABUF_PATH,
          message: `udmabuf caps one buffer at ${limit} bytes (size_limit_mb); asked for ${len}`,
        });
      }
    }
    throw withContext(err, { path: UDMABUF_PATH, device: true });
  }
}
