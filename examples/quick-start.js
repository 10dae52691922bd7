// The quick start in CommonJS, with try/finally: runs as written on every supported Node.
//   node examples/quick-start.js
'use strict';
const { listHeaps, openHeap } = require('dma-heap');

for (const h of listHeaps()) {
  console.log(`${h.backend} heap ${h.name}: ${h.accessible ? 'this user may open it' : 'no access'}`);
}

const heap = openHeap('system'); // the kernel's heap if it opens, else the software framework's
try {
  console.log(`served by: ${heap.backend}${heap.fallbackReason ? ` (${heap.fallbackReason})` : ''}`);
  const buf = heap.alloc(1 << 20, { name: 'camera0' }); // rounded up to whole pages
  try {
    buf.cpuAccess('write', (bytes) => bytes.fill(0x80)); // DMA_BUF_IOCTL_SYNC start/end around the access
    const first = buf.cpuAccess('read', (bytes) => bytes[0]);
    const { exporter, name, ino } = buf.info(); // what /proc/self/fdinfo says
    console.log(`${buf.size} bytes, fd ${buf.fd}, tier ${buf.tier}, exporter ${exporter}, name ${name}, ino ${ino}, first byte 0x${first.toString(16)}`);
  } finally {
    buf.close(); // munmap + close; views onto it are detached (length 0), never dangling
  }
} finally {
  heap.close(); // buffers outlive their heap; close both
}
