/**
 * Buffers in and out of a message: describing the ones sent, and the one routine that
 * adopts received fds (used by the channel and by inheritedBuffers alike).
 */
import { DmaBuf, fromFd } from '../dmabuf';
import { DmaBufStateError } from '../errors';
import { invalidArgType, outOfRange } from '../args';
import { bad } from './errors';
import { isRealTier, MAX_FDS_PER_MESSAGE, SHAREABLE, type BufferMeta } from './frame';
import { closeAll, type Sockets } from './socket';

function describe(buf: unknown, what: string): BufferMeta {
  if (!(buf instanceof DmaBuf)) throw invalidArgType(what, 'an instance of DmaBuf', buf);
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

/** The descriptions of buffers about to be sent; TypeError/RangeError/state errors for bad ones. */
export function validateBuffers(buffers: unknown): BufferMeta[] {
  if (!Array.isArray(buffers)) throw invalidArgType('buffers', 'an array of DmaBuf', buffers);
  if (buffers.length > MAX_FDS_PER_MESSAGE) {
    throw outOfRange('buffers.length', `<= ${MAX_FDS_PER_MESSAGE} (SCM_MAX_FD: buffers in one message)`, buffers.length);
  }
  return buffers.map((b, i) => describe(b, `buffers[${i}]`));
}

/**
 * Adopt received fds as DmaBufs (each fd is taken over: fromFd dup:false leaves an O_CLOEXEC
 * fd of ours in its place), checking each against its description, and give software
 * buffers back their names. Either every fd becomes a buffer, or every fd and buffer is
 * closed and the reason is thrown. `label(i)` names the i-th fd in messages.
 */
export function adoptAll(sock: Sockets, fds: number[], metas: BufferMeta[], label: (i: number) => string): DmaBuf[] {
  const out: DmaBuf[] = [];
  try {
    fds.forEach((fd, i) => {
      let buf: DmaBuf;
      try {
        buf = fromFd(fd, { dup: false });
      } catch (err) {
        throw bad('notDmaBuf', `${label(i)} is not a buffer this process can adopt: ${(err as Error).message}`);
      }
      out.push(buf);
      const meta = metas[i];
      if (buf.size !== meta.size) throw bad('malformed', `${label(i)} is ${buf.size} bytes, the message says ${meta.size}`);
      if (isRealTier(meta.tier) && !buf.isDmaBuf) {
        throw bad('notDmaBuf', `${label(i)} is described as a dma-buf (${meta.tier}) but is a ${buf.tier}`);
      }
    });
  } catch (err) {
    for (const b of out) b.close();
    closeAll(sock, fds.slice(out.length)); // fromFd leaves the fd to the caller when it throws
    throw err;
  }
  out.forEach((buf, i) => restoreName(buf, metas[i].name));
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
