// The real CMA heap, on the kernel rows that have one (DMA_HEAP_EXPECT=cma), and the software
// framework's model of it:
//   - openContiguousHeap() picks the kernel's CMA heap; listHeaps() shows every name once;
//   - a conformance pass (sizes, exporter, fdinfo, zeroing, mapping, sync, names) run the same
//     way on the kernel's CMA heap and on the framework's;
//   - a differential check: the same allocations and frees go to the kernel's heap and to a
//     Framework whose CMA area starts from the kernel's own bitmap (read from debugfs,
//     CONFIG_CMA_DEBUGFS); after every step the outcome (ENOMEM or not) and the whole bitmap must
//     agree: alignment, first fit, fragmentation and exhaustion, at the kernel's page size.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CONTIGUOUS_HEAP_NAMES, listHeaps, openContiguousHeap, openHeap } from '../../lib';
import { Framework } from '../../lib/framework';
import type { DmaBuf } from '../../lib';
import { CMA_HEAP_NAMES, cmaHeaps, expects, testWith } from '../helpers/expect';

const CMA_DEBUGFS = '/sys/kernel/debug/cma';

/** the kernel's CMA areas in debugfs: name, page count, pages per bit, bitmap file */
interface Area { name: string; count: number; orderPerBit: number; bitmap: string; dir: string }

function areas(): Area[] {
  if (!existsSync(CMA_DEBUGFS)) return [];
  const out: Area[] = [];
  for (const name of readdirSync(CMA_DEBUGFS)) {
    const dir = path.join(CMA_DEBUGFS, name);
    // 6.12: <area>/bitmap; 6.15+ (several ranges per area): <area>/ranges/<n>/bitmap as well
    const bitmap = [path.join(dir, 'bitmap'), path.join(dir, 'ranges', '0', 'bitmap')].find((f) => existsSync(f));
    if (!bitmap) continue;
    const num = (f: string) => Number(readFileSync(path.join(dir, f), 'utf8').trim());
    out.push({ name, dir, count: num('count'), orderPerBit: num('order_per_bit'), bitmap });
  }
  return out;
}

/**
 * The CMA area behind a kernel CMA heap. A legacy-named heap and each device-tree region's heap
 * carry their area's name (the cma= area is `reserved`); default_cma_region (6.17+) is the default
 * area under a second name, so its area is the one named like a legacy heap. A row may have
 * several areas (cma-regions: video-memory and camera-memory besides the cma= area).
 */
function areaOf(heap: string): Area {
  const all = areas();
  const found = all.find((a) => a.name === heap)
    ?? (heap === 'default_cma_region' ? all.find((a) => CMA_HEAP_NAMES.includes(a.name)) ?? (all.length === 1 ? all[0] : undefined) : undefined);
  if (!found) throw new Error(`no CMA area in ${CMA_DEBUGFS} behind heap ${heap} (areas: ${all.map((a) => a.name).join(', ') || 'none'}): the row needs CONFIG_CMA_DEBUGFS and debugfs mounted`);
  return found;
}

/** the area's allocation bitmap, one entry per page (debugfs prints u32 words, bit 0 first) */
function readBitmap(area: Area): Uint8Array {
  const words = readFileSync(area.bitmap, 'utf8').trim().split(/\s+/).map(Number);
  const bits = new Uint8Array(area.count);
  const per = 2 ** area.orderPerBit;
  for (let page = 0; page < area.count; page++) {
    const bit = Math.floor(page / per);
    bits[page] = (words[bit >> 5] >>> (bit & 31)) & 1;
  }
  return bits;
}

/** where runs of used pages start and how long they are: a readable form of a bitmap */
function runs(bits: Uint8Array): string {
  const r: string[] = [];
  for (let i = 0; i < bits.length;) {
    if (!bits[i]) { i++; continue; }
    let j = i;
    while (j < bits.length && bits[j]) j++;
    r.push(`${i}+${j - i}`);
    i = j;
  }
  return r.join(' ');
}

const fwBitmap = (fw: Framework): Uint8Array => (fw.cma as unknown as { bitmap: Uint8Array }).bitmap;

const needsCma = testWith('cma');

describe('the kernel CMA heap', () => {
  needsCma('openContiguousHeap() picks the kernel\'s CMA heap, the newest name first', () => {
    using heap = openContiguousHeap();
    expect(heap.backend).toBe('kernel');
    expect(heap.name).toBe(cmaHeaps()[0]);
    // 6.17+ registers default_cma_region (and keeps the legacy name); 6.12 only the legacy one
    expect(heap.name).toBe(expects('cma-alias') ? 'default_cma_region' : cmaHeaps()[0]);
    using buf = heap.alloc(1);
    expect(buf.exporter).toBe(heap.name);
  });

  needsCma('listHeaps() shows each kernel CMA heap once, and they are the CMA names the package knows', () => {
    const kernel = listHeaps({ backend: 'kernel' });
    const names = kernel.map((h) => h.name);
    expect(new Set(names).size).toBe(names.length);
    const cma = names.filter((n) => (CONTIGUOUS_HEAP_NAMES as readonly string[]).includes(n));
    expect(cma).toEqual(expect.arrayContaining(cmaHeaps()));
    expect(cma.length).toBe(cmaHeaps().length);
    for (const h of kernel) expect(h).toMatchObject({ backend: 'kernel', accessible: true, path: `/dev/dma_heap/${h.name}` });
  });

  testWith('cma', 'cma-alias')('default_cma_region and its legacy name are one area: what one takes, the other cannot', () => {
    // Detecting the alias: debugfs has one area for both names (the legacy one is the area's),
    // /proc/meminfo counts every area once, and exhausting the area through one name leaves
    // nothing for the other.
    const total = Number(/^CmaTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
    using primary = openHeap('default_cma_region', { backend: 'kernel' });
    using legacy = openHeap(cmaHeaps().find((n) => n !== 'default_cma_region')!, { backend: 'kernel' });
    const area = areaOf(legacy.name);
    expect(areaOf(primary.name)).toEqual(area);
    expect(areas().filter((a) => CMA_HEAP_NAMES.includes(a.name))).toEqual([area]);
    expect(total).toBe(areas().reduce((sum, a) => sum + a.count, 0) * primary.pageSize);
    const held: DmaBuf[] = [];
    try {
      const chunk = 4 << 20;
      for (;;) {
        try { held.push(primary.alloc(chunk)); } catch (e) { expect(e).toMatchObject({ code: 'ENOMEM' }); break; }
      }
      expect(held.length).toBeGreaterThan(0);
      expect(() => legacy.alloc(chunk)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
      held.pop()!.close();
      using again = legacy.alloc(chunk); // freed through one name, usable through the other
      expect(again.exporter).toBe(legacy.name);
    } finally {
      held.forEach((b) => b.close());
    }
  });
});

// The same checks on the kernel's CMA heap and on the framework's: what the conformance suite
// asks of `system`, asked of the contiguous heap.
const targets: { label: string; open: () => ReturnType<typeof openContiguousHeap>; when: (n: string, f: () => unknown) => void }[] = [
  { label: 'kernel', open: () => openContiguousHeap({ backend: 'kernel' }), when: needsCma },
  { label: 'software', open: () => openContiguousHeap({ framework: new Framework({ cma: { size: 16 << 20 } }) }), when: (n, f) => test(n, f as jest.ProvidesCallback) },
];

describe.each(targets)('CMA heap conformance: $label', ({ open, when }) => {
  when('sizes round up to whole pages of the kernel\'s page size; exporter and fdinfo name the heap', () => {
    using heap = open();
    const page = heap.pageSize;
    expect([4096, 16384, 65536]).toContain(page);
    for (const [ask, got] of [[1, page], [page, page], [page + 1, 2 * page], [3 * page - 1, 3 * page]]) {
      using buf = heap.alloc(ask);
      expect(buf.size).toBe(got);
      expect(buf.exporter).toBe(heap.name);
      expect(buf.info()).toMatchObject({ size: got, exporter: heap.name });
    }
  });

  when('memory is zeroed on allocation, also where a previous buffer wrote', () => {
    using heap = open();
    const size = 1 << 20;
    {
      using dirty = heap.alloc(size);
      dirty.cpuAccess('write', (b) => b.fill(0xa5));
    }
    using buf = heap.alloc(size); // first fit: lands where `dirty` was
    buf.cpuAccess('read', (b) => {
      expect(b.length).toBe(size);
      expect(b.every((x) => x === 0)).toBe(true);
    });
  });

  when('mapping, sync brackets, names and a second mapping of the same pages', () => {
    using heap = open();
    using buf = heap.alloc(3 * heap.pageSize, { name: 'cma-conf' });
    expect(buf.info().name).toBe('cma-conf');
    buf.setName('renamed');
    expect(buf.info().name).toBe('renamed');
    buf.cpuAccess('write', (b) => { b[0] = 1; b[b.length - 1] = 2; });
    using other = buf.dup();
    other.cpuAccess('read', (b) => expect([b[0], b[b.length - 1]]).toEqual([1, 2]));
    expect(buf.read(0, 1)[0]).toBe(1);
  });

  when('a request larger than the whole area is ENOMEM from the heap, not a crash', () => {
    using heap = open();
    expect(() => heap.alloc(256 << 20)).toThrow(expect.objectContaining({ code: 'ENOMEM', heap: heap.name }));
  });
});

// ---- the differential check ----

type Step = { alloc: number } | { free: number };

describe('differential: the framework\'s CMA model against the kernel\'s CMA allocator', () => {
  needsCma('every step agrees on ENOMEM and on the whole bitmap (alignment, first fit, fragmentation, exhaustion)', () => {
    using heap = openContiguousHeap({ backend: 'kernel' });
    const area = areaOf(heap.name); // one area, whatever the number of heap names over it
    const page = heap.pageSize;
    const MiB = 1 << 20;
    const start = readBitmap(area);
    // The framework's area: the kernel's size and page size, starting from the kernel's bitmap
    // (other kernel users hold some pages: the atomic DMA pool, virtio).
    const fw = new Framework({ cma: { size: area.count * page }, pageSize: page });
    expect(fw.cma!.count).toBe(area.count);
    fwBitmap(fw).set(start);
    using model = openContiguousHeap({ framework: fw });

    const steps: Step[] = [
      { alloc: page }, { alloc: 3 * page }, { alloc: MiB }, { alloc: 2 * MiB + MiB / 2 }, { alloc: page },
      { free: 2 }, { alloc: MiB / 2 }, { alloc: 8 * MiB }, { free: 0 }, { alloc: 2 * page },
      { free: 3 }, { alloc: 3 * MiB }, { alloc: 5 * page },
    ];
    // then exhaustion: 4 MiB buffers until ENOMEM (the area is 64 MiB); then fragmentation.
    const EXHAUST = 20;
    const live: [DmaBuf | null, DmaBuf | null][] = [];
    const log: string[] = [];
    const outcome = (h: typeof heap, size: number): DmaBuf | string => {
      try { return h.alloc(size); } catch (e) { return (e as { code: string }).code; }
    };
    const compare = (what: string) => {
      const k = readBitmap(area), m = fwBitmap(fw);
      log.push(`${what}: kernel [${runs(k)}]`);
      if (Buffer.compare(Buffer.from(k), Buffer.from(m)) !== 0) {
        throw new Error(`bitmaps differ after ${what}\nkernel    ${runs(k)}\nframework ${runs(m)}\n${log.join('\n')}`);
      }
    };
    try {
      const doStep = (s: Step, label: string) => {
        if ('alloc' in s) {
          const a = outcome(heap, s.alloc), b = outcome(model, s.alloc);
          const ka = typeof a === 'string' ? a : 'ok', mb = typeof b === 'string' ? b : 'ok';
          live.push([typeof a === 'string' ? null : a, typeof b === 'string' ? null : b]);
          expect(`${label} alloc ${s.alloc}: ${mb}`).toBe(`${label} alloc ${s.alloc}: ${ka}`);
          compare(`${label} alloc ${s.alloc} (${ka})`);
          return ka;
        }
        const [a, b] = live[s.free];
        a?.close(); b?.close();
        live[s.free] = [null, null];
        compare(`${label} free #${s.free}`);
        return 'ok';
      };
      steps.forEach((s, i) => doStep(s, `step ${i}`));
      const first4 = live.length; // index in `live` of the first 4 MiB buffer
      for (let i = 0; i < EXHAUST; i++) doStep({ alloc: 4 * MiB }, `exhaust ${i}`);
      expect(live.slice(first4).some(([a]) => a === null)).toBe(true); // the area ran out
      // fragmentation: free every other 4 MiB buffer of the exhaustion phase, then ask for one
      // page more than the longest free run: refused by both although far more is free in total
      for (let i = first4; i < live.length; i += 2) if (live[i][0]) doStep({ free: i }, 'frag');
      const bits = readBitmap(area);
      const longest = Math.max(...runs(bits.map((b) => 1 - b)).split(' ').filter(Boolean).map((r) => Number(r.split('+')[1])));
      const free = bits.length - bits.reduce((a, b) => a + b, 0);
      expect(free).toBeGreaterThan(2 * (longest + 1));
      expect(doStep({ alloc: (longest + 1) * page }, 'frag')).toBe('ENOMEM');
      expect(doStep({ alloc: page }, 'frag')).toBe('ok');
    } finally {
      for (const [a, b] of live) { a?.close(); b?.close(); }
    }
    // everything freed: the kernel's bitmap is back to where it started
    expect(runs(readBitmap(area))).toBe(runs(start));
  });
});
