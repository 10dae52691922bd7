/**
 * Holding the libuv thread pool: every pool thread blocked in a read of a FIFO until release().
 * Work queued meanwhile (the addon's ioctlAsync, closeMappedAsync) waits its turn, so a test can
 * act between "queued" and "run" deterministically instead of racing the pool.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface HeldPool {
  /** let the pool go (idempotent) */
  release(): Promise<void>;
}

export async function holdThreadPool(): Promise<HeldPool> {
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-pool-'));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, 'r+'); // O_RDWR: Linux opens a FIFO so without a peer
  const reads = Array.from(
    { length: threads },
    () => new Promise<void>((resolve) => fs.read(fd, Buffer.alloc(1), 0, 1, null, () => resolve())),
  );
  // the reads are on the pool once the event loop turned; a pool thread then blocks in read(2)
  await new Promise((resolve) => setTimeout(resolve, 20));
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      fs.writeSync(fd, Buffer.alloc(threads));
      await Promise.all(reads);
      fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
