/**
 * The fence part of the ABI codec (include/dma_heap_abi.h): dma-buf <-> sync_file ioctls,
 * struct sync_file_info and the poll bits, encoded and decoded in one place for the real
 * kernel and the software framework alike.
 */
import { DMA_BUF_BASE, IOW, IOWR } from './uapi';

/** poll(2) bits (Linux generic values) */
export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLNVAL = 0x020;

/** struct dma_buf_export_sync_file / dma_buf_import_sync_file: { u32 flags; s32 fd } */
export const BUF_SYNC_FILE_SIZE = 8;
/** where EXPORT_SYNC_FILE returns the new sync_file fd */
export const BUF_SYNC_FILE_FD_OFFSET = 4;
export const DMA_BUF_IOCTL_EXPORT_SYNC_FILE = IOWR(DMA_BUF_BASE, 2, BUF_SYNC_FILE_SIZE); // 0xC0086202
export const DMA_BUF_IOCTL_IMPORT_SYNC_FILE = IOW(DMA_BUF_BASE, 3, BUF_SYNC_FILE_SIZE); // 0x40086203

export const SYNC_IOC_MAGIC = '>';
export const SYNC_NAME_LEN = 32;
export const SYNC_FILE_INFO_SIZE = 56;
export const SYNC_FENCE_INFO_SIZE = 80;
export const SYNC_MERGE_DATA_SIZE = 48;
export const SYNC_IOC_MERGE = IOWR(SYNC_IOC_MAGIC, 3, SYNC_MERGE_DATA_SIZE); // 0xC0303E03
export const SYNC_IOC_FILE_INFO = IOWR(SYNC_IOC_MAGIC, 4, SYNC_FILE_INFO_SIZE); // 0xC0383E04

export function encodeBufSyncFile(flags: number, fd: number): Uint8Array {
  const b = new Uint8Array(BUF_SYNC_FILE_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, flags >>> 0, true);
  v.setInt32(4, fd | 0, true);
  return b;
}

export function decodeBufSyncFile(bytes: Uint8Array): { flags: number; fd: number } {
  const v = new DataView(bytes.buffer, bytes.byteOffset, BUF_SYNC_FILE_SIZE);
  return { flags: v.getUint32(0, true), fd: v.getInt32(4, true) };
}

/** struct sync_file_info { char name[32]; s32 status; u32 flags; u32 num_fences; u32 pad; u64 sync_fence_info } */
export interface SyncFileInfo {
  name: string;
  /** 1 signalled, 0 active, < 0 an error (-errno) the fence was signalled with */
  status: number;
  flags: number;
  numFences: number;
  pad: number;
  /** user pointer to an array of struct sync_fence_info */
  syncFenceInfo: bigint;
}

export function encodeSyncFileInfo(i: Partial<SyncFileInfo> = {}): Uint8Array {
  const b = new Uint8Array(SYNC_FILE_INFO_SIZE);
  const v = new DataView(b.buffer);
  b.set(Buffer.from(i.name ?? '', 'latin1').subarray(0, SYNC_NAME_LEN - 1));
  v.setInt32(32, i.status ?? 0, true);
  v.setUint32(36, i.flags ?? 0, true);
  v.setUint32(40, i.numFences ?? 0, true);
  v.setUint32(44, i.pad ?? 0, true);
  v.setBigUint64(48, i.syncFenceInfo ?? 0n, true);
  return b;
}

export function decodeSyncFileInfo(bytes: Uint8Array): SyncFileInfo {
  const full = new Uint8Array(SYNC_FILE_INFO_SIZE);
  full.set(bytes.subarray(0, SYNC_FILE_INFO_SIZE));
  const v = new DataView(full.buffer);
  const nul = full.subarray(0, SYNC_NAME_LEN).indexOf(0);
  return {
    name: Buffer.from(full.subarray(0, nul < 0 ? SYNC_NAME_LEN : nul)).toString('latin1'),
    status: v.getInt32(32, true),
    flags: v.getUint32(36, true),
    numFences: v.getUint32(40, true),
    pad: v.getUint32(44, true),
    syncFenceInfo: v.getBigUint64(48, true),
  };
}

/** struct sync_merge_data { char name[32]; s32 fd2; s32 fence; u32 flags; u32 pad } */
export function encodeSyncMergeData(name: string, fd2: number): Uint8Array {
  const b = new Uint8Array(SYNC_MERGE_DATA_SIZE);
  b.set(Buffer.from(name, 'latin1').subarray(0, SYNC_NAME_LEN - 1));
  new DataView(b.buffer).setInt32(32, fd2 | 0, true);
  return b;
}
/** where SYNC_IOC_MERGE returns the merged sync_file's fd */
export const SYNC_MERGE_FENCE_OFFSET = 36;
