import { fstatSync, readlinkSync, type Stats } from 'node:fs';
import { DmaBuf, type Tier } from './dmabuf';
import { DmaBufStateError } from './errors';
import type { Framework } from './framework';
import type { Kernel } from './kernel';
import { nativeKernel, softwareKernel } from './chooser';
import { loadAddon } from './native/load';
import { O_ACCMODE, O_RDONLY } from './uapi';
import { validateOptions } from './validate';

export interface FromFdOptions {
  /** dup the fd (default: the caller keeps theirs) or adopt it (false: the caller's fd is
   *  closed once the DmaBuf holds the file through its own; use buf.fd). Either way, if
   *  fromFd throws, the caller's fd is untouched and still the caller's. */
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
export function fromFd(fd: number, options?: FromFdOptions): DmaBuf {
  options = validateOptions(options);
  if (typeof fd !== 'number' || !Number.isInteger(fd) || fd < 0) {
    throw Object.assign(new TypeError(`fd must be a non-negative integer, got ${String(fd)}`), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  const st = fstatSync(fd); // a closed fd: Node's own EBADF error (errno -9, syscall fstat)
  const dup = options.dup ?? true;
  const native = nativeKernel();
  const software = options.framework ?? softwareKernel();

  let kernel: Kernel;
  if (software.isDmaBuf(fd)) kernel = software;
  else if (native?.isDmaBuf(fd)) kernel = native;
  else if (native && software.backing === 'memfd' && isMemfd(fd)) kernel = software;
  else throw new DmaBufStateError('ERR_DMA_HEAP_NOT_DMA_BUF', `fd ${fd} is ${kindOf(fd, st)}, not a dma-buf`);

  // Work on a private dup until nothing can fail: an error leaves the caller's fd as it was.
  let own: number;
  if (kernel === software && !software.isDmaBuf(fd)) {
    const addon = loadAddon()!;
    const copy = addon.dup(fd, true);
    try {
      own = software.importMemfd(copy); // the framework takes the copy over as the buffer's fd
    } catch (err) {
      if (!software.isDmaBuf(copy)) addon.close(copy);
      throw err;
    }
  } else {
    own = kernel.dup(fd, true);
  }
  if (!dup) {
    // Adopt: the DmaBuf now holds the same file through its own fd; the caller's goes.
    if (software.isDmaBuf(fd)) software.close(fd);
    else loadAddon()!.close(fd);
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
