// The producer side of camera.mjs: node examples/camera-producer.mjs <socket> [frames]
import { allocShareable, DmaBufChannel } from 'dma-heap';

const [socketPath, count = '8'] = process.argv.slice(2);
const WIDTH = 640;
const HEIGHT = 480;
const FRAME_BYTES = (WIDTH * HEIGHT * 3) / 2; // NV12

// The strongest shareable tier this host has: a dma-heap, udmabuf, else a memfd (not JS memory).
const ring = [];
const channel = DmaBufChannel.connect(socketPath);
try {
  for (let i = 0; i < 3; i++) {
    ring.push(allocShareable(FRAME_BYTES, { name: `cam0-${i}`, tiers: ['dma-heap', 'udmabuf', 'memfd'] }));
  }
  console.log(`producer: ring of ${ring.length} ${ring[0].tier} buffers of ${ring[0].size} bytes`);
  let inFlight = 0;
  for (let seq = 0; seq < Number(count); seq++) {
    if (inFlight === ring.length) {
      await channel.receive(); // the consumer is done with the oldest frame
      inFlight--;
    }
    const buf = ring[seq % ring.length];
    buf.cpuAccess('write', (px) => px.fill(seq & 0xff)); // "capture" a frame
    await channel.send([buf], { seq, width: WIDTH, height: HEIGHT, format: 'NV12' });
    inFlight++;
  }
  while (inFlight-- > 0) await channel.receive();
} finally {
  channel.close();
  for (const buf of ring) buf.close();
}
