/**
 * The fence side of a dma-buf, after drivers/dma-buf/dma-buf.c: its reservation object,
 * dma_buf_poll, EXPORT_SYNC_FILE / IMPORT_SYNC_FILE and the wait SYNC start does.
 */
import {
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  POLLIN,
  POLLOUT,
} from '../fence-uapi';
import { DMA_BUF_SYNC_RW, DMA_BUF_SYNC_WRITE } from '../uapi';
import { stubFence, type DmaFence } from './dma-fence';
import { DmaResv } from './dma-resv';
import { errno } from './errno';
import { KernelSyncFile, type SyncFileContext } from './sync-file';

const resvs = new WeakMap<object, DmaResv>();

/** dmabuf->resv (made with the buffer in the kernel; on first use here) */
export function resvOf(dmabuf: object): DmaResv {
  let resv = resvs.get(dmabuf);
  if (!resv) resvs.set(dmabuf, (resv = new DmaResv()));
  return resv;
}

/**
 * dma_buf_poll: of the requested POLLIN/POLLOUT, POLLOUT is ready when no fence at all is
 * pending, POLLIN when no write fence is. Nothing else is ever reported (the kernel masks
 * with poll_requested_events). Measured on 6.12 with vgem: write fence → 0, read fence →
 * POLLIN, none → POLLIN|POLLOUT.
 */
export function dmaBufPoll(dmabuf: object, requested: number): number {
  const resv = resvOf(dmabuf);
  let events = requested & (POLLIN | POLLOUT);
  if (events & POLLOUT && !resv.testSignaled(true)) events &= ~POLLOUT;
  if (events & POLLIN && !resv.testSignaled(false)) events &= ~POLLIN;
  return events;
}

/** the fences a poll for `requested` waits on (the first to signal re-evaluates the mask) */
export function dmaBufPollFences(dmabuf: object, requested: number): DmaFence[] {
  const resv = resvOf(dmabuf);
  if (requested & POLLOUT) return resv.pending(true);
  if (requested & POLLIN) return resv.pending(false);
  return [];
}

/**
 * __dma_buf_begin_cpu_access waits (interruptibly, without limit) for the conflicting fences:
 * a write access for all, a read access for the writers. The framework runs on the thread
 * that would have to signal them (a software fence is signalled by JS, a delayed one by a
 * timer on this loop), so a wait could never end: it fails with EDEADLK instead. Wait with
 * the event loop first (DmaBuf.idle, cpuAccessAsync), then SYNC start finds nothing pending.
 */
export function syncStartCheck(dmabuf: object, flags: bigint): void {
  const write = (flags & DMA_BUF_SYNC_WRITE) !== 0n;
  if (!resvOf(dmabuf).testSignaled(write)) {
    throw errno(
      'EDEADLK',
      `a ${write ? '' : 'write '}fence is pending on this software buffer; only this thread could signal it, so SYNC start would never return: await buf.idle() or use cpuAccessAsync()`,
    );
  }
}

/** flags of EXPORT/IMPORT_SYNC_FILE: READ and/or WRITE, nothing else, not neither → else EINVAL */
function rwFlags(flags: number): number {
  if (BigInt(flags) & ~DMA_BUF_SYNC_RW || (BigInt(flags) & DMA_BUF_SYNC_RW) === 0n) throw errno('EINVAL');
  return flags;
}

/**
 * EXPORT_SYNC_FILE / IMPORT_SYNC_FILE on a dma-buf; any other command: null (not ours).
 * EXPORT with WRITE hands out every pending fence (one, or an array), with READ the
 * writers; nothing pending: the signalled stub. IMPORT adds the sync_file's fence as a write
 * fence with WRITE set, else as a read fence; an fd that is no sync_file: EINVAL.
 */
export function dmaBufFenceIoctl(dmabuf: object, cmd: number, mem: Uint8Array, ctx: SyncFileContext): number | null {
  const v = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  switch (cmd >>> 0) {
    case DMA_BUF_IOCTL_EXPORT_SYNC_FILE: {
      if (mem.length < 8) throw errno('EFAULT');
      const flags = rwFlags(v.getUint32(0, true));
      const fence = resvOf(dmabuf).getSingleton((BigInt(flags) & DMA_BUF_SYNC_WRITE) !== 0n) ?? stubFence;
      v.setInt32(4, ctx.install(new KernelSyncFile(fence)), true);
      return 0;
    }
    case DMA_BUF_IOCTL_IMPORT_SYNC_FILE: {
      if (mem.length < 8) throw errno('EFAULT');
      const flags = rwFlags(v.getUint32(0, true));
      const sf = ctx.lookup(v.getInt32(4, true));
      if (!sf) throw errno('EINVAL');
      const resv = resvOf(dmabuf);
      for (const f of sf.fence.unwrap()) resv.add(f, (BigInt(flags) & DMA_BUF_SYNC_WRITE) !== 0n ? 'write' : 'read');
      return 0;
    }
    default:
      return null;
  }
}
