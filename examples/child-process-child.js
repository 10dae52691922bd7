// The child side of child-process.js: adopts the buffers spawnWithBuffers passed it.
'use strict';
const { inheritedBuffers } = require('dma-heap');

const [frame] = inheritedBuffers(); // maps the parent's pages; O_CLOEXEC again from here on
try {
  const all42 = frame.cpuAccess('read', (bytes) => bytes.every((b) => b === 0x42));
  console.log(`child: ${frame.size}-byte ${frame.tier} buffer '${frame.info().name}', parent's bytes seen: ${all42}`);
  frame.cpuAccess('write', (bytes) => {
    bytes[0] = 0x99;
  });
  if (!all42) process.exitCode = 1;
} finally {
  frame.close();
}
