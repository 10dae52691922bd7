/**
 * struct sync_file, after drivers/dma-buf/sync_file.c: a file holding one fence. Its
 * ioctls (SYNC_IOC_FILE_INFO, SYNC_IOC_MERGE) take the same bytes as the kernel's
 * (lib/fence-uapi.ts); poll reports POLLIN once the fence is signalled.
 */
import { decodeSyncFileInfo, POLLIN, SYNC_IOC_FILE_INFO, SYNC_IOC_MERGE, SYNC_NAME_LEN } from '../fence-uapi';
import { type DmaFence, fenceName, singleton } from './dma-fence';
import { errno } from './errno';
import type { File, FileOperations } from './file';

export class KernelSyncFile {
  /** a name given at merge time (SYNC_IOC_MERGE); else the fence's name is shown */
  userName = '';
  constructor(readonly fence: DmaFence) {}

  /** sync_file_get_name */
  name(): string {
    return (this.userName || fenceName(this.fence)).slice(0, SYNC_NAME_LEN - 1);
  }

  /** sync_file_poll: POLLIN when signalled, whatever was asked */
  poll(): number {
    return this.fence.signaled ? POLLIN : 0;
  }
}

/** what a sync_file ioctl needs from the fd table (MERGE reads fd2 and installs the result) */
export interface SyncFileContext {
  lookup(fd: number): KernelSyncFile | null;
  install(sf: KernelSyncFile): number;
}

/**
 * sync_file_ioctl. FILE_INFO: flags or pad set → EINVAL; num_fences 0 → status, name and the
 * count; num_fences below the count → EINVAL; else the kernel copies sync_fence_info records
 * to the user pointer, which the framework cannot follow: EFAULT (the real kernel's answer
 * for a NULL pointer, measured on 6.12). MERGE: fd2 not a sync_file → ENOENT.
 */
export function syncFileIoctl(sf: KernelSyncFile, cmd: number, mem: Uint8Array, ctx: SyncFileContext): number {
  const v = new DataView(mem.buffer, mem.byteOffset, mem.byteLength);
  switch (cmd >>> 0) {
    case SYNC_IOC_FILE_INFO: {
      if (mem.length < 56) throw errno('EFAULT');
      const info = decodeSyncFileInfo(mem);
      if (info.flags || info.pad) throw errno('EINVAL');
      const count = sf.fence.unwrap().length;
      if (info.numFences === 0) {
        v.setInt32(32, sf.fence.status, true);
      } else {
        if (info.numFences < count) throw errno('EINVAL');
        throw errno('EFAULT', 'the software framework cannot write sync_fence_info records to a user pointer');
      }
      mem.fill(0, 0, SYNC_NAME_LEN);
      mem.set(Buffer.from(sf.name(), 'latin1'));
      v.setUint32(40, count, true);
      return 0;
    }
    case SYNC_IOC_MERGE: {
      if (mem.length < 48) throw errno('EFAULT');
      if (v.getUint32(40, true) || v.getUint32(44, true)) throw errno('EINVAL');
      const other = ctx.lookup(v.getInt32(32, true));
      if (!other) throw errno('ENOENT');
      const fences = [...new Set([...sf.fence.unwrap(), ...other.fence.unwrap()])].filter((f) => !f.signaled);
      const merged = new KernelSyncFile(singleton(fences) ?? sf.fence);
      const nul = mem.subarray(0, SYNC_NAME_LEN).indexOf(0);
      merged.userName = Buffer.from(mem.subarray(0, nul < 0 ? SYNC_NAME_LEN - 1 : nul)).toString('latin1');
      v.setInt32(36, ctx.install(merged), true);
      return 0;
    }
    default:
      throw errno('ENOTTY');
  }
}

/** sync_file_fops: ioctl and poll; no mmap, no seek, no fdinfo lines of its own */
export const syncFileFops: FileOperations<KernelSyncFile> = {
  unlockedIoctl: (file, cmd, arg, ctx) => {
    if (!ctx.syncFiles) throw errno('ENOTTY');
    return syncFileIoctl(file.priv, cmd, arg, ctx.syncFiles);
  },
  poll: (file) => file.priv.poll(),
  pollFences: (file) => (file.priv.fence.signaled ? [] : [file.priv.fence]),
};

/** the sync_file behind a file, if it is one (its f_op is sync_file_fops) */
export function syncFileOf(file: File): KernelSyncFile | undefined {
  return file.fops === (syncFileFops as FileOperations) ? (file.priv as KernelSyncFile) : undefined;
}
