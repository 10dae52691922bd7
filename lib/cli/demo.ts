import { release } from 'node:os';
import { openHeap } from '../index';
import { COMMON_OPTIONS, type Command } from './common';
import { jsonText, shown } from '../escape';
import { listReport } from './list';

export const demo: Command = {
  name: 'demo',
  summary: 'list heaps, allocate, map, fill, verify, report (the default command)',
  usage: 'demo [--json]',
  help: `What a newcomer runs first: says which heaps this machine has (read from /dev, whether
or not the native addon loaded), opens the system heap (the kernel's, else the software
framework's, and why), allocates 1 MiB, maps, fills and verifies it.`,
  options: { ...COMMON_OPTIONS },
  run(values, _positionals, io) {
    const facts = listReport();
    const lines: string[] = [];
    lines.push(`dma-heap demo on ${process.platform} ${release()}, Node ${process.version}`);
    lines.push(`native addon: ${facts.addon.loaded ? 'loaded' : `NOT loaded (${shown(facts.addon.reason ?? '')})`}`);
    if (!facts.kernel.present) {
      lines.push(`kernel heaps: none — this machine has no ${facts.kernel.dir} (no CONFIG_DMABUF_HEAPS, or not Linux)`);
    } else {
      for (const h of facts.kernel.heaps) lines.push(`kernel heap: ${shown(h.path)} (${h.perms} ${shown(h.owner)}:${shown(h.group)}, ${h.accessible ? 'accessible' : 'no access for this user'})`);
      if (facts.kernel.heaps.length === 0) lines.push(`kernel heaps: none — ${facts.kernel.dir} is empty`);
      if (!facts.addon.loaded && facts.kernel.heaps.length) {
        lines.push(`  ...but without the native addon this package cannot use them: run 'npm rebuild dma-heap' (install scripts allowed)`);
      }
    }

    const heap = openHeap('system');
    const size = 1 << 20;
    try {
      if (heap.backend === 'software') {
        lines.push(`using: the software dma-heap framework, ${heap.backing} backing (${shown(heap.fallbackReason ?? 'forced: DMA_HEAP_BACKEND=software')})`);
      } else {
        lines.push(`using: the real kernel, ${shown(heap.path ?? '')}`);
      }
      const buf = heap.alloc(size, { name: 'dma-heap-demo' });
      try {
        const ok = buf.cpuAccess('readwrite', (bytes) => {
          for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
          for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ((i * 31 + 7) & 0xff)) return false;
          return true;
        });
        const info = buf.info();
        lines.push(
          `allocated ${buf.size} bytes: fd ${buf.fd}, tier ${buf.tier}, exporter ${shown(info.exporter)}, name ${shown(info.name ?? '')}, ino ${info.ino}, ` +
            `real dma-buf: ${buf.isDmaBuf ? 'yes' : 'no'}`,
        );
        lines.push(`mapped, filled and verified ${size} bytes: ${ok ? 'OK' : 'MISMATCH'}`);
        if (values.json) {
          io.out(
            jsonText(
              {
                platform: process.platform,
                kernel: release(),
                node: process.version,
                addon: facts.addon,
                kernelHeaps: facts.kernel,
                heap: { name: heap.name, backend: heap.backend, backing: heap.backing, ...(heap.fallbackReason ? { fallbackReason: heap.fallbackReason } : {}) },
                buffer: { size: buf.size, tier: buf.tier, isDmaBuf: buf.isDmaBuf, exporter: info.exporter, name: info.name, ino: info.ino },
                verified: ok,
              },
              2,
            ),
          );
        } else {
          for (const l of lines) io.out(l);
        }
        return ok ? 0 : 1;
      } finally {
        buf.close();
      }
    } finally {
      heap.close();
    }
  },
};
