/**
 * "This fd is of the wrong kind": the one error DmaBuf.fromFd, SyncFile.fromFd and
 * DmaBufChannel.fromFd throw for an open fd that is no dma-buf, sync_file or socket. A
 * DmaHeapError whose code is what the real kernel says when handed that fd: EINVAL from
 * dma_buf_get (a driver importing it) and sync_file_fdget, ENOTSOCK from sockfd_lookup
 * (sendmsg/recvmsg). The message names what the fd is instead. A closed fd stays EBADF, as a
 * DmaHeapError from all three (openFdStat).
 */
import { fstatSync, readlinkSync, type Stats } from 'node:fs';
import { DmaHeapError } from './errors';

export type FdKind = 'dma-buf' | 'sync_file' | 'socket';

const REFUSAL: Record<FdKind, { code: string; syscall: string }> = {
  'dma-buf': { code: 'EINVAL', syscall: 'ioctl' },
  sync_file: { code: 'EINVAL', syscall: 'ioctl' },
  socket: { code: 'ENOTSOCK', syscall: 'recvmsg' },
};

/** what an open fd is, in words: its file type, else its /proc/self/fd link (anon_inode:dmabuf, /memfd:...) */
function describeFd(fd: number): string {
  try {
    const st = fstatSync(fd);
    if (st.isFile()) return 'a regular file';
    if (st.isFIFO()) return 'a pipe';
    if (st.isSocket()) return 'a socket';
    if (st.isDirectory()) return 'a directory';
    if (st.isCharacterDevice()) return 'a character device';
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return 'of another kind';
  }
}

export function wrongFdKind(fd: number, expected: FdKind): DmaHeapError {
  const { code, syscall } = REFUSAL[expected];
  return new DmaHeapError(code, syscall, { message: `fd ${fd} is ${describeFd(fd)}, not a ${expected}` });
}

/** fstat of an fd the caller handed us: a closed one is a DmaHeapError EBADF (syscall fstat), as
 *  every fromFd reports it (Node's own fstat error is another class, without the fd's number) */
export function openFdStat(fd: number): Stats {
  try {
    return fstatSync(fd);
  } catch (err) {
    throw new DmaHeapError((err as NodeJS.ErrnoException).code ?? 'EBADF', 'fstat', { message: `fd ${fd} is not open` });
  }
}
