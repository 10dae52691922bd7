#!/usr/bin/env node
import { release } from 'node:os';
import { addonStatus, listHeaps, openHeap, type Heap } from './index';

function list(): void {
  const heaps = listHeaps();
  if (heaps.length === 0) console.log('no heaps');
  for (const h of heaps) {
    console.log(`${h.backend.padEnd(8)} ${h.name.padEnd(20)} ${h.accessible ? 'accessible' : 'no access'}  ${h.path}`);
  }
}

/** List heaps, allocate, map, fill, verify, report: what a newcomer runs first. */
function demo(): number {
  const addon = addonStatus();
  const kernelHeaps = listHeaps({ backend: addon.loaded ? 'auto' : 'software' }).filter((h) => h.backend === 'kernel');
  console.log(`dma-heap demo on ${process.platform} ${release()}, Node ${process.version}`);
  console.log(`native addon: ${addon.loaded ? 'loaded' : `not loaded (${addon.reason})`}`);
  if (kernelHeaps.length === 0) {
    console.log('kernel heaps: none — this machine has no /dev/dma_heap (no CONFIG_DMABUF_HEAPS, or not Linux)');
  } else {
    for (const h of kernelHeaps) console.log(`kernel heap: ${h.path} (${h.accessible ? 'accessible' : 'no access for this user'})`);
  }

  const heap: Heap = openHeap('system');
  const size = 1 << 20;
  try {
    if (heap.backend === 'software') {
      console.log(`using: the software dma-heap framework, ${heap.backing} backing (${heap.fallbackReason ?? 'forced'})`);
    } else {
      console.log(`using: the real kernel, ${heap.path}`);
    }
    using buf = heap.alloc(size, { name: 'dma-heap-demo' });
    const ok = buf.cpuAccess('readwrite', (bytes) => {
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) & 0xff;
      for (let i = 0; i < bytes.length; i++) if (bytes[i] !== ((i * 31 + 7) & 0xff)) return false;
      return true;
    });
    const info = buf.info();
    console.log(
      `allocated ${buf.size} bytes: fd ${buf.fd}, tier ${buf.tier}, exporter ${info.exporter}, name ${info.name}, ino ${info.ino}, ` +
        `real dma-buf: ${buf.isDmaBuf ? 'yes' : 'no'}`,
    );
    console.log(`mapped, filled and verified ${size} bytes: ${ok ? 'OK' : 'MISMATCH'}`);
    return ok ? 0 : 1;
  } finally {
    heap.close();
  }
}

const [command = 'demo'] = process.argv.slice(2);
const commands: Record<string, () => number | void> = { demo, list };
if (!commands[command]) {
  console.error(`usage: dma-heap [demo|list]`);
  process.exit(2);
}
try {
  process.exitCode = commands[command]() ?? 0;
} catch (err) {
  console.error(`dma-heap ${command}: ${(err as Error).message}`);
  process.exitCode = 1;
}
