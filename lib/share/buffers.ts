/**
 * Buffers and sync_files in and out of a message: describing the ones sent, and the one
 * routine that adopts received fds (used by the channel and by inheritedItems alike).
 */
import { openSync } from 'node:fs';
import { DmaBuf, fromFd } from '../dmabuf';
import { DmaBufStateError, syncFileClosed } from '../errors';
import { invalidArgType, outOfRange, validateArray } from '../args';
import { SyncFile } from '../sync-file';
import { bad } from './errors';
import { isRealTier, isSyncFileMeta, MAX_FDS_PER_MESSAGE, SHAREABLE, type BufferMeta, type ItemMeta } from './frame';
import { closeAll, type Sockets } from './socket';

/** What one message (or one spawn) carries: dma-bufs and sync_files, in any order. */
export type ShareItem = DmaBuf | SyncFile;

function describeSyncFile(sf: SyncFile, what: string): ItemMeta {
  if (sf.closed) throw syncFileClosed(what);
  if (sf.backend !== 'kernel') {
    throw new DmaBufStateError(
      'ERR_DMA_HEAP_NOT_SHAREABLE',
      `${what} is a software framework's sync_file (a JS object of this process): only a real kernel's sync_file has an fd another process can use`,
    );
  }
  return { kind: 'sync-file' };
}

function describe(buf: unknown, what: string): ItemMeta {
  if (buf instanceof SyncFile) return describeSyncFile(buf, what);
  if (!(buf instanceof DmaBuf)) throw invalidArgType(what, 'an instance of DmaBuf or SyncFile', buf);
  const b = buf;
  if (b.closed) throw new DmaBufStateError('ERR_DMA_BUF_CLOSED', `${what} is closed`);
  if (!SHAREABLE.includes(b.tier)) {
    throw new DmaBufStateError(
      'ERR_DMA_HEAP_NOT_SHAREABLE',
      `${what} lives in JS memory (tier '${b.tier}'): only dma-heap, udmabuf and memfd buffers have an fd another process can map`,
    );
  }
  const meta: BufferMeta = { size: b.size, tier: b.tier };
  const name = b.info().name;
  if (name !== undefined) meta.name = name;
  return meta;
}

/** The descriptions of items about to be sent; TypeError/RangeError/state errors for bad ones. */
export function validateBuffers(buffers: unknown): ItemMeta[] {
  validateArray(buffers, 'buffers', 'an array of DmaBuf or SyncFile');
  if (buffers.length > MAX_FDS_PER_MESSAGE) {
    throw outOfRange('buffers.length', `<= ${MAX_FDS_PER_MESSAGE} (SCM_MAX_FD: buffers in one message)`, buffers.length);
  }
  return buffers.map((b, i) => describe(b, `buffers[${i}]`));
}

/**
 * The fds to pass for `items` (already described): each item's own, unless one is a read-only
 * software buffer. Its fd is the memfd itself, opened O_RDWR: passed as it is, the receiver could
 * write what this process may not (the kernel's read-only dma-buf is O_RDONLY for everyone who
 * gets it). Such a buffer goes as an O_RDONLY reopen of the memfd (/proc/self/fd), as the kernel's
 * does; then every fd is the caller's to close after passing them (`owned`), the others dup'ed.
 */
export function sendableFds(sock: Sockets, items: ShareItem[]): { fds: number[]; owned: boolean } {
  const readOnlyMemfd = (b: ShareItem) => b instanceof DmaBuf && b.readOnly && b.tier === 'memfd';
  if (!items.some(readOnlyMemfd)) return { fds: items.map((b) => b.fd), owned: false };
  const fds: number[] = [];
  try {
    for (const b of items) fds.push(readOnlyMemfd(b) ? openSync(`/proc/self/fd/${b.fd}`, 'r') /* libuv opens O_CLOEXEC */ : sock.dup(b.fd, true));
  } catch (err) {
    closeAll(sock, fds);
    throw err;
  }
  return { fds, owned: true };
}

/** A received fd described as a sync_file: it must be one (SYNC_IOC_FILE_INFO), of the real kernel. */
function adoptSyncFile(sock: Sockets, fd: number, label: string): SyncFile {
  let sf: SyncFile;
  try {
    // dup: an O_CLOEXEC fd of ours (an inherited fd is not); fromFd closes its dup when it refuses
    sf = SyncFile.fromFd(fd, { dup: true });
  } catch (err) {
    throw bad('notSyncFile', `${label} is described as a sync_file but is not one: ${(err as Error).message}`);
  }
  if (sf.backend !== 'kernel') {
    sf.close();
    throw bad('notSyncFile', `${label} names a software framework's sync_file, which can't come from another process`);
  }
  closeAll(sock, [fd]);
  return sf;
}

/**
 * Adopt received fds as DmaBufs and SyncFiles, as their descriptions say (each fd is taken
 * over: an O_CLOEXEC fd of ours takes its place), checking each against its description, and
 * give software buffers back their names. Either every fd becomes an item, or every fd and
 * item is closed and the reason is thrown. `label(i)` names the i-th fd in messages.
 */
export function adoptAll(sock: Sockets, fds: number[], metas: ItemMeta[], label: (i: number) => string): ShareItem[] {
  const out: ShareItem[] = [];
  try {
    fds.forEach((fd, i) => {
      const meta = metas[i];
      if (isSyncFileMeta(meta)) {
        out.push(adoptSyncFile(sock, fd, label(i)));
        return;
      }
      let buf: DmaBuf;
      try {
        buf = fromFd(fd, { dup: false });
      } catch (err) {
        throw bad('notDmaBuf', `${label(i)} is not a buffer this process can adopt: ${(err as Error).message}`);
      }
      out.push(buf);
      if (buf.size !== meta.size) throw bad('malformed', `${label(i)} is ${buf.size} bytes, the message says ${meta.size}`);
      if (isRealTier(meta.tier) && !buf.isDmaBuf) {
        throw bad('notDmaBuf', `${label(i)} is described as a dma-buf (${meta.tier}) but is a ${buf.tier}`);
      }
    });
  } catch (err) {
    for (const item of out) item.close();
    closeAll(sock, fds.slice(out.length)); // fromFd leaves the fd to the caller when it throws
    throw err;
  }
  out.forEach((item, i) => {
    if (item instanceof DmaBuf) restoreName(item, (metas[i] as BufferMeta).name);
  });
  return out;
}

/**
 * A software framework's name lives in the sending process's JS: give the receiver's
 * framework the same one. A real dma-buf carries its name in the kernel already.
 */
function restoreName(buf: DmaBuf, name: string | undefined): void {
  if (name === undefined || buf.backend !== 'software') return;
  try {
    if (buf.info().name !== name) buf.setName(name);
  } catch {
    // A name is a label: the buffer is fine without it.
  }
}
