// Hand a buffer to a worker thread without copying: post its fd number, and the worker takes
// its own reference with DmaBuf.fromFd (a dup), so each thread closes its own handle.
//   node examples/worker.js
// Needs the native addon (a JS-memory buffer has no fd a worker can adopt).
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const { allocShareable, DmaBuf } = require('dma-heap');

if (isMainThread) {
  const buf = allocShareable(1 << 20, { tiers: ['dma-heap', 'udmabuf', 'memfd'] });
  buf.cpuAccess('write', (bytes) => bytes.fill(1));
  // the fd must stay open until the worker has its dup: close only once it answered
  const worker = new Worker(__filename, { workerData: { fd: buf.fd } });
  worker.once('message', (sum) => {
    const changed = buf.cpuAccess('read', (bytes) => bytes[0]);
    console.log(`main: the worker summed ${sum} bytes of 1 and wrote byte 0 = ${changed} into the same pages`);
    process.exitCode = sum === buf.size && changed === 2 ? 0 : 1;
    buf.close();
  });
  worker.once('error', (err) => {
    buf.close();
    throw err;
  });
} else {
  const buf = DmaBuf.fromFd(workerData.fd); // dup by default
  try {
    const sum = buf.cpuAccess('readwrite', (bytes) => {
      let s = 0;
      for (const b of bytes) s += b;
      bytes[0] = 2;
      return s;
    });
    parentPort.postMessage(sum);
  } finally {
    buf.close();
  }
}
