// The framework's fence model against what Linux 6.12 did in the same scenarios (measured in
// the VM with vgem playing the device; test/fences/kernel.test.ts repeats them on the kernel).
import {
  decodeSyncFileInfo,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  encodeBufSyncFile,
  encodeSyncFileInfo,
  encodeSyncMergeData,
  POLLIN,
  POLLOUT,
  SYNC_IOC_FILE_INFO,
  SYNC_IOC_MERGE,
} from '../../lib/fence-uapi';
import { dmaBufFenceIoctl, dmaBufPoll, resvOf, syncStartCheck } from '../../lib/framework/dma-buf-fences';
import { DmaFence, fenceContextAlloc, stubFence } from '../../lib/framework/dma-fence';
import { KernelSyncFile, syncFileIoctl, type SyncFileContext } from '../../lib/framework/sync-file';
import { DMA_BUF_SYNC_READ, DMA_BUF_SYNC_START, DMA_BUF_SYNC_WRITE } from '../../lib/uapi';
import { testIf } from '../helpers/skip';

/** a tiny fd table for sync_files */
function table(): SyncFileContext & { files: Map<number, KernelSyncFile> } {
  const files = new Map<number, KernelSyncFile>();
  let next = 100;
  return { files, lookup: (fd) => files.get(fd) ?? null, install: (sf) => (files.set(next, sf), next++) };
}

const device = (name = 'vgem') => new DmaFence(name, 'unbound', fenceContextAlloc(), 1);

function exportSf(buf: object, flags: number, t: ReturnType<typeof table>): KernelSyncFile {
  const arg = encodeBufSyncFile(flags, 0);
  dmaBufFenceIoctl(buf, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg, t);
  return t.files.get(new DataView(arg.buffer).getInt32(4, true)) as KernelSyncFile;
}

function info(sf: KernelSyncFile, t: SyncFileContext) {
  const arg = encodeSyncFileInfo();
  syncFileIoctl(sf, SYNC_IOC_FILE_INFO, arg, t);
  const i = decodeSyncFileInfo(arg);
  return { name: i.name, status: i.status, num: i.numFences, poll: sf.poll() };
}

const code = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return (e as { code: string }).code;
  }
};

describe('dma_buf_poll', () => {
  test('nothing pending: POLLIN|POLLOUT (6.12: 5); only what was asked is reported', () => {
    const buf = {};
    expect(dmaBufPoll(buf, POLLIN | POLLOUT)).toBe(5);
    expect(dmaBufPoll(buf, POLLIN)).toBe(POLLIN);
    expect(dmaBufPoll(buf, POLLOUT)).toBe(POLLOUT);
    expect(dmaBufPoll(buf, 0x40)).toBe(0);
  });

  test('a write fence: neither (6.12: 0); a read fence: POLLIN only (6.12: 1); signalled: 5 again', () => {
    const buf = {};
    const w = device();
    resvOf(buf).add(w, 'write');
    expect(dmaBufPoll(buf, POLLIN | POLLOUT)).toBe(0);
    w.signal();
    expect(dmaBufPoll(buf, POLLIN | POLLOUT)).toBe(5);
    const r = device();
    resvOf(buf).add(r, 'read');
    expect(dmaBufPoll(buf, POLLIN | POLLOUT)).toBe(POLLIN);
    r.signal();
    expect(dmaBufPoll(buf, POLLIN | POLLOUT)).toBe(5);
  });
});

describe('EXPORT_SYNC_FILE / IMPORT_SYNC_FILE', () => {
  test('nothing pending: the signalled stub "stub-stub0-0", one fence, POLLIN', () => {
    const t = table();
    expect(info(exportSf({}, 1, t), t)).toEqual({ name: 'stub-stub0-0', status: 1, num: 1, poll: POLLIN });
  });

  test('flags 0, END (4) or unknown bits: EINVAL, as 6.12', () => {
    const t = table();
    for (const f of [0, 4, 8]) expect(code(() => exportSf({}, f, t))).toBe('EINVAL');
  });

  test('a write fence: READ, WRITE and RW all export it, active; after the signal status 1', () => {
    const t = table();
    const buf = {};
    const w = device();
    resvOf(buf).add(w, 'write');
    const sfs = [1, 2, 3].map((f) => exportSf(buf, f, t));
    for (const sf of sfs) expect(info(sf, t)).toEqual({ name: `vgem-unbound${w.context}-1`, status: 0, num: 1, poll: 0 });
    w.signal();
    for (const sf of sfs) expect(info(sf, t)).toMatchObject({ status: 1, poll: POLLIN });
  });

  test('a read fence: READ exports the stub (no writer), WRITE the fence', () => {
    const t = table();
    const buf = {};
    resvOf(buf).add(device(), 'read');
    expect(info(exportSf(buf, 1, t), t)).toMatchObject({ name: 'stub-stub0-0', status: 1 });
    expect(info(exportSf(buf, 2, t), t)).toMatchObject({ status: 0, num: 1 });
  });

  test('two read fences: WRITE exports a dma_fence_array of 2', () => {
    const t = table();
    const buf = {};
    const [a, b] = [device(), device()];
    resvOf(buf).add(a, 'read');
    resvOf(buf).add(b, 'read');
    const sf = exportSf(buf, 2, t);
    expect(info(sf, t)).toMatchObject({ status: 0, num: 2, poll: 0 });
    expect(info(sf, t).name).toMatch(/^dma_fence_array-unbound\d+-1$/);
    a.signal();
    expect(info(sf, t).status).toBe(0);
    b.signal();
    expect(info(sf, t)).toMatchObject({ status: 1, poll: POLLIN });
  });

  test('import as a write fence blocks the other buffer; bad fd, non-sync_file, flags 0: EINVAL', () => {
    const t = table();
    const [src, dst] = [{}, {}];
    const w = device();
    resvOf(src).add(w, 'write');
    const sf = exportSf(src, 1, t);
    const imp = (fd: number, flags: number) => code(() => dmaBufFenceIoctl(dst, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, encodeBufSyncFile(flags, fd), t));
    expect(imp(100, 2)).toBe('ok');
    expect(dmaBufPoll(dst, POLLIN | POLLOUT)).toBe(0);
    expect(imp(9999, 1)).toBe('EINVAL');
    expect(imp(100, 0)).toBe('EINVAL');
    w.signal();
    expect(dmaBufPoll(dst, POLLIN | POLLOUT)).toBe(5);
  });

  test('a fence signalled with an error reports it as the status', () => {
    const t = table();
    const buf = {};
    const w = device();
    resvOf(buf).add(w, 'write');
    const sf = exportSf(buf, 1, t);
    w.signal(-5);
    expect(info(sf, t).status).toBe(-5);
  });
});

describe('SYNC_IOC_FILE_INFO and MERGE', () => {
  test('flags or pad set: EINVAL; room for fences but no user memory: EFAULT (6.12 with a NULL pointer)', () => {
    const t = table();
    const sf = new KernelSyncFile(stubFence);
    expect(code(() => syncFileIoctl(sf, SYNC_IOC_FILE_INFO, encodeSyncFileInfo({ flags: 1 }), t))).toBe('EINVAL');
    expect(code(() => syncFileIoctl(sf, SYNC_IOC_FILE_INFO, encodeSyncFileInfo({ pad: 1 }), t))).toBe('EINVAL');
    expect(code(() => syncFileIoctl(sf, SYNC_IOC_FILE_INFO, encodeSyncFileInfo({ numFences: 1 }), t))).toBe('EFAULT');
    expect(code(() => syncFileIoctl(sf, SYNC_IOC_FILE_INFO, encodeSyncFileInfo({ numFences: 4 }), t))).toBe('EFAULT');
    expect(code(() => syncFileIoctl(sf, 0xc0083e05, new Uint8Array(8), t))).toBe('ENOTTY');
  });

  test('merge: named, signalled when both are; fd2 not a sync_file: ENOENT', () => {
    const t = table();
    const [a, b] = [device(), device()];
    const fa = t.install(new KernelSyncFile(a));
    const fb = t.install(new KernelSyncFile(b));
    const arg = encodeSyncMergeData('both', fb);
    syncFileIoctl(t.files.get(fa) as KernelSyncFile, SYNC_IOC_MERGE, arg, t);
    const merged = t.files.get(new DataView(arg.buffer).getInt32(36, true)) as KernelSyncFile;
    expect(info(merged, t)).toMatchObject({ name: 'both', status: 0, num: 2 });
    a.signal();
    b.signal();
    expect(info(merged, t).status).toBe(1);
    expect(code(() => syncFileIoctl(merged, SYNC_IOC_MERGE, encodeSyncMergeData('x', 4242), t))).toBe('ENOENT');
  });
});

describe('SYNC start with a pending software fence', () => {
  test('EDEADLK instead of a wait no one could end: read waits for writers, write for all', () => {
    const buf = {};
    const r = device('swfence');
    resvOf(buf).add(r, 'read');
    expect(code(() => syncStartCheck(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ))).toBe('ok');
    expect(code(() => syncStartCheck(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE))).toBe('EDEADLK');
    r.signal();
    expect(code(() => syncStartCheck(buf, DMA_BUF_SYNC_START | DMA_BUF_SYNC_WRITE))).toBe('ok');
  });
});

describe('the codec and the C header agree', () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const addon = (require('../../lib/native/load') as typeof import('../../lib/native/load')).loadAddon();
  const t = testIf(addon !== null, 'the addon is not loaded');
  t('fence ioctl numbers, struct sizes and poll bits', () => {
    const abi = addon!.abi;
    const uapi = require('../../lib/fence-uapi') as typeof import('../../lib/fence-uapi');
    expect([abi.DMA_BUF_IOCTL_EXPORT_SYNC_FILE, abi.DMA_BUF_IOCTL_IMPORT_SYNC_FILE, abi.SYNC_IOC_FILE_INFO, abi.SYNC_IOC_MERGE]).toEqual([
      uapi.DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
      uapi.DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
      uapi.SYNC_IOC_FILE_INFO,
      uapi.SYNC_IOC_MERGE,
    ]);
    expect([abi.SYNC_FILE_INFO_SIZE, abi.SYNC_FENCE_INFO_SIZE, abi.BUF_SYNC_FILE_SIZE]).toEqual([
      uapi.SYNC_FILE_INFO_SIZE,
      uapi.SYNC_FENCE_INFO_SIZE,
      uapi.BUF_SYNC_FILE_SIZE,
    ]);
    expect([abi.POLLIN, abi.POLLOUT, abi.POLLERR, abi.POLLHUP, abi.POLLNVAL]).toEqual([
      uapi.POLLIN,
      uapi.POLLOUT,
      uapi.POLLERR,
      uapi.POLLHUP,
      uapi.POLLNVAL,
    ]);
  });

  t('pollNow answers poll(2) at once: a pipe is writable, readable only once written', () => {
    const [r, w] = addon!.socketpair(addon!.abi.SOCK_SEQPACKET);
    try {
      expect(addon!.pollNow(r, 1 | 4)).toBe(4);
      addon!.sendFds(w, Buffer.from('x'), []);
      expect(addon!.pollNow(r, 1 | 4)).toBe(5);
      expect(addon!.pollNow(r, 1)).toBe(1);
    } finally {
      addon!.close(r);
      addon!.close(w);
    }
  });
});
