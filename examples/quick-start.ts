// The quick start in TypeScript with `using`: closed at the end of the scope, also on throw.
// `using` needs Node 24+ to run as written, or TypeScript compiling to target ES2022 (or lower)
// with lib "esnext.disposable" (or @types/node), which turns it into try/finally:
//   npx tsc --strict --target es2022 --module nodenext --lib es2022,esnext.disposable --types node quick-start.ts
//   node quick-start.js
import { openHeap, type DmaBuf, type Heap } from 'dma-heap';

function fill(buf: DmaBuf, value: number): void {
  buf.cpuAccess('write', (bytes: Uint8Array) => bytes.fill(value));
}

{
  using heap: Heap = openHeap('system');
  using buf = heap.alloc(1 << 20, { name: 'camera0' });
  fill(buf, 0x80);
  const info = buf.info();
  console.log(`${buf.size} bytes on ${heap.backend}, exporter ${info.exporter}, name ${info.name ?? '(none)'}`);
} // buf, then heap, closed here
