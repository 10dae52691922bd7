/**
 * Fence scenarios run the same way on the real kernel (vgem plays the device) and on the
 * software framework (its SoftwareFenceSource does): what poll and sync_file info report
 * at each step. The differential check compares the two records.
 */
import { openHeap } from '../../lib';
import { Framework, SoftwareFenceSource } from '../../lib/framework';
import type { DmaBuf } from '../../lib/dmabuf';
import { kernelOf } from '../../lib/kernel';
import { POLLIN, POLLOUT } from '../../lib/fence-uapi';
import type { SyncFile } from '../../lib/sync-file';

export interface FenceDevice {
  /** put a pending read or write fence on the buffer; returns a handle for signal() */
  attach(buf: DmaBuf, access: 'read' | 'write'): Promise<unknown>;
  signal(fence: unknown): Promise<void>;
}

/** a sync_file's name says which fence it holds; context numbers differ between kernels */
function kind(name: string): string {
  if (name.startsWith('stub-')) return name;
  if (name.startsWith('dma_fence_array-')) return 'array';
  return 'device';
}

function sfRecord(sf: SyncFile): string {
  const i = sf.info();
  const poll = kernelOf(sf).pollNow(sf.fd, POLLIN | POLLOUT);
  sf.close();
  return `${kind(i.name)} status=${i.rawStatus} fences=${i.numFences} poll=${poll}`;
}

async function attempt(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    const err = e as { code?: string; errno?: number };
    return err.code ?? (err.errno === 16 ? 'EBUSY' : String(err.errno));
  }
}

/** Runs every scenario on two fresh buffers of one kernel; returns step → observation. */
export async function runFenceScenarios(alloc: () => DmaBuf, device: FenceDevice): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const a = alloc();
  const b = alloc();
  const mask = (buf: DmaBuf) => String(kernelOf(buf).pollNow(buf.fd, POLLIN | POLLOUT));
  const exp = (buf: DmaBuf, access: 'read' | 'write' | 'readwrite') => sfRecord(buf.exportSyncFile(access));
  try {
    out['idle: poll'] = mask(a);
    out['idle: export read'] = exp(a, 'read');

    const w = await device.attach(a, 'write');
    out['write fence: poll'] = mask(a);
    out['write fence: poll POLLIN only'] = String(kernelOf(a).pollNow(a.fd, POLLIN));
    out['write fence: export read'] = exp(a, 'read');
    out['write fence: export write'] = exp(a, 'write');
    out['write fence: export readwrite'] = exp(a, 'readwrite');
    out['write fence: attach read'] = await attempt(device.attach(a, 'read'));
    const held = a.exportSyncFile('read');
    b.importSyncFile(held, 'write');
    out['imported as write: poll other'] = mask(b);
    await device.signal(w);
    out['signalled: poll'] = mask(a);
    out['signalled: poll other'] = mask(b);
    out['signalled: held sync_file'] = sfRecord(held);

    const r1 = await device.attach(a, 'read');
    out['read fence: poll'] = mask(a);
    out['read fence: export read'] = exp(a, 'read');
    out['read fence: export write'] = exp(a, 'write');
    out['read fence: attach write'] = await attempt(device.attach(a, 'write'));
    const r2 = await device.attach(a, 'read');
    out['two read fences: poll'] = mask(a);
    const both = a.exportSyncFile('write');
    out['two read fences: export write'] = sfRecord(both.dup());
    await device.signal(r1);
    out['one of two signalled: poll'] = mask(a);
    out['one of two signalled: the array'] = sfRecord(both.dup());
    await device.signal(r2);
    out['both signalled: poll'] = mask(a);
    out['both signalled: the array'] = sfRecord(both);
  } finally {
    a.close();
    b.close();
  }
  return out;
}

/** A software framework with a fence source and one buffer of `size`: what the software fence tests start from. */
export function softwareFence(size: number): { fw: Framework; source: SoftwareFenceSource; buf: DmaBuf } {
  const fw = new Framework();
  return { fw, source: new SoftwareFenceSource(fw), buf: openHeap('system', { framework: fw }).alloc(size) };
}
