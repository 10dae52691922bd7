import { fstatSync, readlinkSync, type Stats } from 'node:fs';
import { DmaBuf, type Tier } from './dmabuf';
import { DmaBufStateError } from './errors';
import type { Framework } from './framework';
import type { Kernel } from './kernel';
import { nativeKernel, softwareKernel } from './kernels';
import { loadAddon } from './load-addon';
import { O_ACCMODE, O_RDONLY } from './uapi';

export interface FromFdOptions {
  /** dup the fd (default: the caller keeps theirs) or adopt it (false: the DmaBuf closes it) */
  dup?: boolean;
  /** the software framework that may own the fd (default: the process's) */
  framework?: Framework;
}

function kindOf(fd: number, st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isFIFO()) return 'a pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return 'not a dma-buf';
  }
}

function isMemfd(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:');
  } catch {
    return false;
  }
}

function readOnly(kernel: Kernel, fd: number): boolean {
  const flags = /^flags:\s*([0-7]+)/m.exec(kernel.fdinfo(fd))?.[1];
  return flags !== undefined && (parseInt(flags, 8) & O_ACCMODE) === O_RDONLY;
}

/**
 * A DmaBuf for an fd that came from elsewhere: another API, a parent process, a socket.
 * Real dma-bufs go to the real kernel; the software framework's buffers (and memfds,
 * which is what its buffers are to another process) to the framework. Anything else —
 * a regular file, a pipe, a socket, a closed fd — is refused with a clear error.
 */
export function fromFd(fd: number, options: FromFdOptions = {}): DmaBuf {
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw Object.assign(new TypeError(`fd must be a non-negative integer, got ${String(fd)}`), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  const st = fstatSync(fd); // a closed fd: Node's own EBADF error (errno -9, syscall fstat)
  const dup = options.dup ?? true;
  const native = nativeKernel();
  const software = options.framework ?? softwareKernel();

  let kernel: Kernel;
  let own = fd;
  if (software.isDmaBuf(fd)) {
    kernel = software;
    if (dup) own = software.dup(fd, true);
  } else if (native?.isDmaBuf(fd)) {
    kernel = native;
    own = dup ? native.dup(fd, true) : fd;
    if (!dup) native.own(fd);
  } else if (native && software.backing === 'memfd' && isMemfd(fd)) {
    kernel = software;
    const addon = loadAddon()!;
    const mine = dup ? addon.dup(fd, true) : fd;
    if (!dup) addon.own(fd);
    try {
      own = software.importMemfd(mine);
    } catch (err) {
      if (dup) addon.close(mine);
      throw err;
    }
  } else {
    throw new DmaBufStateError('ERR_DMA_HEAP_NOT_DMA_BUF', `fd ${fd} is ${kindOf(fd, st)}, not a dma-buf`);
  }

  const exporter = /^exp_name:\s*(.*)$/m.exec(kernel.fdinfo(own))?.[1] ?? '';
  let tier: Tier;
  if (kernel.backend === 'kernel') tier = exporter === 'udmabuf' ? 'udmabuf' : 'dma-heap';
  else tier = kernel.backing === 'memfd' ? 'memfd' : 'js';
  return new DmaBuf(own, {
    kernel,
    tier,
    readOnly: readOnly(kernel, own),
    heap: tier === 'dma-heap' || tier === 'memfd' || tier === 'js' ? exporter : undefined,
  });
}
