// Contiguity proven, not assumed: vivid's capture device with the videobuf2 dma-contig allocator
// (vivid.allocators=1) needs physically contiguous memory. Buffers from openContiguousHeap() (the
// kernel's CMA heap) must be accepted at VIDIOC_QBUF every time; system-heap buffers are not
// (EFAULT "contiguous chunk is too small" whenever their pages are scattered, which on a booted
// kernel is nearly always). Runs where the row declares vivid-contig and cma (the x86-64 row).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openContiguousHeap, openHeap } from '../../lib';
import type { DmaBuf, Heap } from '../../lib';
import { describeWith } from '../helpers/expect';

const ROUNDS = 6;
const PER_ROUND = 4;

/** the capture node of the first vivid instance (the one allocators=1 makes dma-contig) */
function contigNode(): string {
  for (const v of readdirSync('/sys/class/video4linux')) {
    if (readFileSync(`/sys/class/video4linux/${v}/name`, 'utf8').trim() === 'vivid-000-vid-cap') return `/dev/${v}`;
  }
  throw new Error('no vivid-000-vid-cap in /sys/class/video4linux');
}

describeWith('vivid', 'vivid-contig', 'cma')('contiguity at a dma-contig V4L2 device (vivid allocators=1)', () => {
  let helper = '';
  let node = '';
  let sizeimage = 0;

  beforeAll(() => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'v4l2-qbuf-'));
    helper = path.join(dir, 'v4l2-qbuf');
    execFileSync('cc', ['-O2', '-Wall', '-o', helper, path.join(__dirname, 'v4l2-qbuf.c')], { stdio: 'pipe' });
    node = contigNode();
    // zero buffers: just reports the format's sizeimage
    const r = spawnSync(helper, [node, '0'], { encoding: 'utf8' });
    sizeimage = Number(/sizeimage (\d+)/.exec(r.stdout)?.[1]);
    expect(sizeimage).toBeGreaterThan(0);
  });

  /** queue PER_ROUND fresh buffers from `heap`; the per-buffer verdicts */
  function queue(heap: Heap): string[] {
    const bufs: DmaBuf[] = [];
    try {
      for (let i = 0; i < PER_ROUND; i++) bufs.push(heap.alloc(sizeimage));
      const r = spawnSync(helper, [node, String(PER_ROUND)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe', ...bufs.map((b) => b.fd)],
      });
      if (r.status !== 0) throw new Error(`v4l2-qbuf failed (${r.status}): ${r.stderr}`);
      return r.stdout.split('\n').filter((l) => /^\d+ /.test(l)).map((l) => l.split(' ')[1]);
    } finally {
      bufs.forEach((b) => b.close());
    }
  }

  test(`CMA heap buffers are accepted at VIDIOC_QBUF every time (${ROUNDS} x ${PER_ROUND})`, () => {
    using heap = openContiguousHeap({ backend: 'kernel' });
    const verdicts = Array.from({ length: ROUNDS }, () => queue(heap)).flat();
    expect(verdicts).toEqual(Array(ROUNDS * PER_ROUND).fill('ok'));
  });

  test('system heap buffers of the same size are refused with EFAULT (scattered pages)', () => {
    using heap = openHeap('system', { backend: 'kernel' });
    const verdicts = Array.from({ length: ROUNDS }, () => queue(heap)).flat();
    // every refusal is the dma-contig EFAULT; at least one buffer is refused (in practice all)
    expect(verdicts.filter((v) => v !== 'ok' && v !== 'EFAULT')).toEqual([]);
    expect(verdicts.filter((v) => v === 'EFAULT').length).toBeGreaterThan(0);
  });
});
