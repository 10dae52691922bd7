/**
 * Hazard: an fd closed while an async call on it is still queued, and its number reused by the
 * next open. The addon's pool thread used to ioctl the number it was given, so a SYNC queued by
 * cpuAccessAsync reached whatever file got that number after buf.close(). Both kernels now hold
 * the file from the call on (a dup on the real one, a reference in the framework), as the
 * kernel's fdget does for a syscall in flight. The thread pool is held so the close and the
 * reuse land between "queued" and "run" every time, not by luck.
 */
import { closeSync, openSync } from 'node:fs';
import { openHeap } from '../../lib';
import { backends } from '../helpers/backends';
import { fdTarget, newFds, openFds } from '../helpers/fds';
import { type HeldPool, holdThreadPool } from '../helpers/threadpool';

/** /dev/null opened until it gets number `fd` (lower free numbers are filled on the way);
 *  every one is closed after the test, whatever it found */
const opened: number[] = [];
function reuseNumber(fd: number): number {
  expect(fd).toBeGreaterThanOrEqual(0);
  for (let i = 0; i < 1024 && !opened.includes(fd); i++) opened.push(openSync('/dev/null', 'r'));
  expect(opened).toContain(fd);
  return fd;
}
afterEach(() => opened.splice(0).forEach((n) => closeSync(n)));

/** the pool is let go however the test ends: a held pool would hang every later test */
let held: HeldPool | undefined;
async function holdPool(): Promise<HeldPool> {
  held = await holdThreadPool();
  return held;
}
afterEach(async () => {
  await held?.release();
  held = undefined;
});

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe.each(backends())('an fd closed while its async call is queued: $label', (backend) => {
  test('heap.close() during allocAsync, the number reused: the buffer still comes from that heap', async () => {
    const before = openFds();
    const heap = openHeap('system', backend.options());
    const pool = await holdPool();
    const pending = heap.allocAsync(4096, { name: 'in-flight' });
    const fd = heap.fd;
    heap.close();
    const reused = reuseNumber(fd);
    await nextTurn(); // the framework's ioctlAsync runs here; the addon's waits for the pool
    await pool.release();
    const buf = await pending;
    expect(buf.info()).toMatchObject({ exporter: 'system', name: 'in-flight', size: buf.size });
    expect(fdTarget(reused)).toBe('/dev/null');
    buf.close();
    opened.splice(0).forEach((n) => closeSync(n));
    expect(newFds(before)).toEqual([]);
  });

  test('buf.close() during cpuAccessAsync, the number reused: the SYNC reaches no other file, fn never runs', async () => {
    const before = openFds();
    using heap = openHeap('system', backend.options());
    const buf = heap.alloc(4096);
    const pool = await holdPool();
    let ran = false;
    const outcome = buf
      .cpuAccessAsync('write', () => {
        ran = true;
      })
      .then(() => 'resolved', (err: unknown) => err);
    await nextTurn(); // idle() resolved: SYNC_START is queued (on the held pool, or the framework's next turn)
    const fd = buf.fd;
    buf.close();
    const reused = reuseNumber(fd);
    await pool.release();
    // before: ENOTTY (the addon's ioctl reached /dev/null) or EBADF (the framework looked the number up late)
    expect(await outcome).toMatchObject({ code: 'ERR_DMA_BUF_CLOSED' });
    expect(ran).toBe(false);
    expect(fdTarget(reused)).toBe('/dev/null');
    opened.splice(0).forEach((n) => closeSync(n));
    heap.close();
    expect(newFds(before)).toEqual([]);
  });
});
