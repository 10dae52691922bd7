// Share a buffer with a child process: its fd goes into the child's stdio (fd 3), the
// child maps the very same pages. The child writes an answer the parent then reads.
//   node examples/child-process.js
// Needs the native addon (JS memory cannot be shared).
'use strict';
const path = require('node:path');
const { allocShareable, spawnWithBuffers } = require('dma-heap');

const frame = allocShareable(1 << 20, { name: 'frame0', tiers: ['dma-heap', 'udmabuf', 'memfd'] });
let child;
try {
  frame.cpuAccess('write', (bytes) => bytes.fill(0x42));
  child = spawnWithBuffers(process.execPath, [path.join(__dirname, 'child-process-child.js')], [frame], { stdio: 'inherit' });
} catch (err) {
  frame.close();
  throw err;
}
child.once('exit', (code) => {
  try {
    const answer = frame.cpuAccess('read', (bytes) => bytes[0]);
    console.log(`parent: child exited with ${code}; byte 0 is now 0x${answer.toString(16)} (the child wrote it)`);
    process.exitCode = code === 0 && answer === 0x99 ? 0 : 1;
  } finally {
    frame.close();
  }
});
