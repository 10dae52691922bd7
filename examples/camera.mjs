// A camera-style pipeline between two processes: a producer fills frames in a ring of three
// shared buffers and sends each over a Unix socket (SCM_RIGHTS: the fd travels, the pixels
// don't); this consumer checks every frame and hands the buffer back for the next one.
//   node examples/camera.mjs [frames]
// Needs the native addon (sockets and shareable buffers are real fds).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DmaBufChannel } from 'dma-heap';

const frames = Number(process.argv[2] ?? 8);
// A fresh private directory: any user may create it, and a crash leaves no socket in the way.
const dir = mkdtempSync(join(tmpdir(), 'dma-heap-camera-'));
const socketPath = join(dir, 'camera.sock');
const server = DmaBufChannel.listen(socketPath);
try {
  const producerFile = fileURLToPath(new URL('./camera-producer.mjs', import.meta.url));
  const producer = spawn(process.execPath, [producerFile, socketPath, String(frames)], { stdio: 'inherit' });
  const exited = new Promise((resolve) => producer.once('exit', resolve));
  const channel = await new Promise((resolve, reject) => {
    server.once('connection', resolve);
    server.once('error', reject);
    producer.once('exit', (code) => reject(new Error(`the producer exited (${code}) before connecting`)));
  });

  let good = 0;
  for await (const { buffers, payload } of channel) {
    const [frame] = buffers;
    const { seq, width, height, format } = payload;
    try {
      const expected = seq & 0xff;
      const ok = frame.cpuAccess('read', (px) => px[0] === expected && px[px.length - 1] === expected);
      console.log(`consumer: frame ${seq} ${width}x${height} ${format}, ${frame.tier} buffer ino ${frame.info().ino}: ${ok ? 'ok' : 'CORRUPT'}`);
      if (ok) good++;
    } finally {
      frame.close(); // our reference; the producer still holds its own
    }
    await channel.send([], { done: seq }); // the producer may refill that buffer now
  }
  channel.close();
  const code = await exited;
  console.log(`consumer: ${good}/${frames} frames good, producer exited with ${code}`);
  if (good !== frames || code !== 0) process.exitCode = 1;
} finally {
  server.close(); // removes the socket file
  rmSync(dir, { recursive: true, force: true });
}
