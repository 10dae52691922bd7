// The quick start as an ES module (Node 20: `import` of the CommonJS package works).
//   node examples/quick-start.mjs
import { listHeaps, openHeap } from 'dma-heap';

console.log(listHeaps().map((h) => `${h.backend}:${h.name}`).join(' '));

const heap = openHeap('system');
try {
  const buf = await heap.allocAsync(4 << 20, { name: 'frame0' }); // off the event loop: large buffers take long
  try {
    const view = new Uint8Array(buf.map()); // zero-copy: the same pages the kernel (and devices) see
    buf.beginCpuAccess('write');
    view.fill(0xa5);
    buf.endCpuAccess('write');
    console.log(`${buf.size} bytes from ${heap.backend} (${buf.tier}), mapped: ${view.byteLength} bytes`);
  } finally {
    buf.close();
  }
} finally {
  heap.close();
}
