// Fallback mode, as on a laptop or in CI: no /dev/dma_heap (or no access, or no addon).
// The same code runs on the software dma-heap framework; everything says what served it.
//   node examples/fallback.js
//   DMA_HEAP_BACKEND=software node examples/fallback.js    # force it where the kernel has heaps
'use strict';
const { addonStatus, allocShareable, openHeap } = require('dma-heap');

const addon = addonStatus();
console.log(`native addon: ${addon.loaded ? `loaded from ${addon.file}` : `not loaded (${addon.reason})`}`);

const heap = openHeap('system');
try {
  console.log(`heap 'system' served by: ${heap.backend}, buffers backed by ${heap.backing}`);
  if (heap.fallbackReason) console.log(`why not the kernel: ${heap.fallbackReason}`);
  const buf = heap.alloc(3 * 4096 + 1, { name: 'laptop' }); // rounded up to pages, as the kernel does
  try {
    console.log(`allocated ${buf.size} bytes: tier ${buf.tier}, a real dma-buf: ${buf.isDmaBuf ? 'yes' : 'no'}`);
  } finally {
    buf.close();
  }
} finally {
  heap.close();
}

// Code that must hand the buffer to a device asks for a real dma-buf, and gets a clear
// error instead of something weaker:
try {
  allocShareable(1 << 20, { requireDmaBuf: true }).close();
  console.log('a real dma-buf (dma-heap or udmabuf) is available here');
} catch (err) {
  if (err.code !== 'ERR_DMA_HEAP_NO_DMA_BUF') throw err;
  console.log(`no real dma-buf here: ${err.message}`);
}
