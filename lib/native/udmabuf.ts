import { existsSync, readFileSync } from 'node:fs';
import type { Addon } from './addon';
import { DmaHeapError, withContext } from '../errors';
import {
  F_SEAL_SHRINK,
  MFD_ALLOW_SEALING,
  MFD_CLOEXEC,
  O_CLOEXEC,
  O_RDWR,
  UDMABUF_CREATE,
  UDMABUF_FLAGS_CLOEXEC,
  UDMABUF_SIZE_LIMIT_DEFAULT,
  encodeUdmabufCreate,
} from '../uapi';

export const UDMABUF_PATH = '/dev/udmabuf';

/** The per-buffer cap the udmabuf module enforces (size_limit_mb, 64 MiB unless changed). */
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
 * A real dma-buf made from a memfd, as libcamera does: memfd_create with sealing,
 * ftruncate, F_SEAL_SHRINK (udmabuf requires it; F_SEAL_WRITE must stay unset),
 * then UDMABUF_CREATE on /dev/udmabuf. The memfd is closed afterwards: the
 * dma-buf holds its pages. `len` is validated and page-aligned by the caller.
 * The returned fd is owned by this thread's environment at once (a terminating
 * worker closes it), before any JS can lose it.
 */
export function createUdmabuf(addon: Addon, len: bigint, cloexec: boolean): number {
  const ctx = { path: UDMABUF_PATH, device: true };
  const limit = udmabufSizeLimit();
  if (len > BigInt(limit)) {
    throw new DmaHeapError('EINVAL', 'ioctl', {
      path: UDMABUF_PATH,
      message: `udmabuf caps one buffer at ${limit} bytes (size_limit_mb); asked for ${len}`,
    });
  }
  let fd: number;
  const memfd = addon.memfdCreate('dma-heap:udmabuf', MFD_CLOEXEC | MFD_ALLOW_SEALING);
  try {
    addon.ftruncate(memfd, Number(len));
    addon.addSeals(memfd, F_SEAL_SHRINK);
    const dev = addon.open(UDMABUF_PATH, O_RDWR | O_CLOEXEC);
    try {
      fd = addon.ioctl(dev, UDMABUF_CREATE, encodeUdmabufCreate(memfd, cloexec ? UDMABUF_FLAGS_CLOEXEC : 0, 0n, len));
      addon.own(fd);
    } finally {
      addon.close(dev);
    }
  } catch (err) {
    throw withContext(err, ctx);
  } finally {
    addon.close(memfd);
  }
  return fd;
}
