import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { nativeKernel } from '../../lib/chooser';
import { BufferPool, PooledBuffer, allocShareable, createShareablePool, type AcquireOptions } from '../../lib';
import { openHeap } from '../../lib/heap';
import { Framework } from '../../lib/framework';
import { backends, openFds } from '../helpers/backends';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const PAGE = 4096;

describe.each(backends())('buffer pools: $label', (backend) => {
  let start: number;
  beforeEach(() => {
    start = openFds().size;
  });

  test('count buffers are made and mapped up front; each keeps its fd, pages and mapping for life', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: 3 * PAGE, count: 3, name: 'frames' });
    expect(pool.stats()).toEqual({ size: 3 * PAGE, inUse: 0, idle: 3, total: 3, max: 3, waiting: 0, bytes: 9 * PAGE, closed: false });
    expect(openFds().size).toBe(start + 4); // the heap and three buffers

    const seen = new Map<number, { ino: number; bytes: Uint8Array }>();
    for (let frame = 0; frame < 12; frame++) {
      using b = pool.acquire();
      expect(b.size).toBe(3 * PAGE);
      expect(b.buffer.info().name).toBe('frames');
      const before = seen.get(b.fd);
      if (before) {
        expect(b.buffer.info().ino).toBe(before.ino);
        expect(b.bytes()).toBe(before.bytes); // the same mapping, not a new one
        expect(b.bytes()[0]).toBe(before.bytes[0]); // not zeroed by default
      } else {
        seen.set(b.fd, { ino: b.buffer.info().ino, bytes: b.bytes() });
      }
      b.bytes().fill(frame);
    }
    expect(seen.size).toBeLessThanOrEqual(3);
    expect(openFds().size).toBe(start + 4); // no fd came or went while cycling
  });

  test('acquire() takes idle buffers, then throws ERR_DMA_HEAP_POOL_EXHAUSTED; tryAcquire() returns null', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 2 });
    const a = pool.acquire();
    const b = pool.acquire();
    expect(a.fd).not.toBe(b.fd);
    expect(pool.stats()).toMatchObject({ inUse: 2, idle: 0, total: 2 });
    expect(() => pool.acquire()).toThrow(expect.objectContaining({ name: 'DmaBufStateError', code: 'ERR_DMA_HEAP_POOL_EXHAUSTED' }));
    expect(pool.tryAcquire()).toBeNull();
    a.release();
    expect(pool.stats()).toMatchObject({ inUse: 1, idle: 1 });
    const c = pool.acquire();
    expect(() => a.fd).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    b.release();
    c.release();
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 2, total: 2 });
  });

  test('max above count: the pool grows on demand up to max, never beyond', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1, max: 3 });
    expect(pool.total).toBe(1);
    const held = [pool.acquire(), pool.acquire(), pool.acquire()];
    expect(pool.stats()).toMatchObject({ inUse: 3, idle: 0, total: 3, bytes: 3 * PAGE });
    expect(pool.tryAcquire()).toBeNull();
    for (const b of held) b.release();
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 3, total: 3 });
  });

  test('acquireAsync() waits while all are in use, first come first served, and gets the released buffer', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    const first = pool.acquire();
    const fd = first.fd;
    const order: string[] = [];
    const w1 = pool.acquireAsync().then((b) => (order.push('w1'), b));
    const w2 = pool.acquireAsync().then((b) => (order.push('w2'), b));
    await new Promise((r) => setImmediate(r));
    expect(order).toEqual([]);
    expect(pool.stats().waiting).toBe(2);
    first.release();
    const b1 = await w1;
    expect(b1.fd).toBe(fd);
    expect(pool.stats()).toMatchObject({ waiting: 1, inUse: 1, idle: 0 });
    b1.release();
    const b2 = await w2;
    expect(order).toEqual(['w1', 'w2']);
    b2.release();
    expect(pool.stats()).toMatchObject({ waiting: 0, inUse: 0, idle: 1 });
  });

  test('acquireAsync() with an AbortSignal: abort rejects with ABORT_ERR and leaves the queue; already aborted rejects at once', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    const held = pool.acquire();
    const ac = new AbortController();
    const waiting = pool.acquireAsync({ signal: ac.signal });
    const next = pool.acquireAsync();
    ac.abort(new Error('frame deadline'));
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: expect.objectContaining({ message: 'frame deadline' }) });
    expect(pool.stats().waiting).toBe(1);
    await expect(pool.acquireAsync({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORT_ERR' });
    held.release();
    (await next).release(); // the aborted waiter did not swallow the buffer
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, waiting: 0 });
  });

  test('acquireAsync() options: signal must be an AbortSignal, unknown keys refused, the same error idle or waiting', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    const notSignal = { code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"options.signal" property must be an instance of AbortSignal') };
    const bad = [{ signal: 'x' }, { signal: {} }, { signal: null }, { signal: new AbortController() }] as unknown as AcquireOptions[];
    for (const options of bad) await expect(pool.acquireAsync(options)).rejects.toMatchObject(notSignal); // a buffer is idle
    await expect(pool.acquireAsync({ signall: AbortSignal.abort() } as AcquireOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
    await expect(pool.acquireAsync('x' as AcquireOptions)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    const held = pool.acquire();
    for (const options of bad) await expect(pool.acquireAsync(options)).rejects.toMatchObject(notSignal); // it would wait
    expect(pool.stats()).toMatchObject({ waiting: 0, inUse: 1, idle: 0 });
    held.release();
    (await pool.acquireAsync({ signal: undefined })).release();
  });

  test('acquireAsync() grows the pool with allocAsync while below max', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 0, max: 2 });
    const [a, b] = await Promise.all([pool.acquireAsync(), pool.acquireAsync()]);
    expect(pool.stats()).toMatchObject({ inUse: 2, total: 2 });
    expect(a.bytes().length).toBe(PAGE);
    const c = pool.acquireAsync();
    expect(pool.stats().waiting).toBe(1);
    a.release();
    (await c).release();
    b.release();
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 2 });
  });

  test('double release throws ERR_DMA_HEAP_POOL_RELEASED; a stale handle cannot touch the next user’s buffer', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    const a = pool.acquire();
    const buf = a.buffer;
    a.release();
    expect(a.released).toBe(true);
    expect(() => a.release()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(() => pool.release(a)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(() => a.bytes()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(() => pool.release(buf)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    const b = pool.acquire(); // the same buffer, a new acquisition
    expect(b.buffer).toBe(buf);
    expect(() => a.release()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(pool.inUse).toBe(1); // b still holds it
    a[Symbol.dispose](); // `using` after an explicit release does nothing
    expect(pool.inUse).toBe(1);
    pool.release(b.buffer); // the DmaBuf a handle holds releases it too
    expect(b.released).toBe(true); // ...and ends the handle: its acquisition is over
    expect(() => b.release()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1 });
  });

  test('release by the DmaBuf ends the handle: the stale handle cannot write into the next user’s frame', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    const stale = pool.acquire();
    pool.release(stale.buffer);
    expect(stale.released).toBe(true);
    const next = pool.acquire(); // the same buffer, the next user's turn
    next.bytes().fill(0x11);
    for (const use of [() => stale.bytes(), () => stale.buffer, () => stale.fd, () => stale.size, () => stale.release()]) {
      expect(use).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    }
    expect(() => pool.release(stale)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(next.bytes().every((x) => x === 0x11)).toBe(true);
    expect(next.released).toBe(false);
    next.release();
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1 });
  });

  test('a foreign buffer or another pool’s handle throws ERR_DMA_HEAP_POOL_FOREIGN and is left untouched', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    using other = heap.createPool({ size: PAGE, count: 1 });
    using plain = heap.alloc(PAGE);
    expect(() => pool.release(plain)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_FOREIGN' }));
    expect(plain.closed).toBe(false);
    const theirs = other.acquire();
    expect(() => pool.release(theirs)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_FOREIGN' }));
    expect(theirs.released).toBe(false);
    theirs.release();
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, total: 1 });
    expect(other.stats()).toMatchObject({ inUse: 0, idle: 1, total: 1 });
  });

  test('close() frees idle buffers at once and in-use ones when released; waiters reject; acquire refuses', async () => {
    using heap = openHeap('system', backend.options());
    const pool = heap.createPool({ size: PAGE, count: 3 });
    const held = pool.acquire();
    const waiterPool = heap.createPool({ size: PAGE, count: 1 });
    const w = waiterPool.acquire();
    const waiting = waiterPool.acquireAsync();
    expect(openFds().size).toBe(start + 5);

    pool.close();
    expect(openFds().size).toBe(start + 3); // two idle buffers gone, the held one stays
    expect(pool.stats()).toMatchObject({ closed: true, inUse: 1, idle: 0, total: 1 });
    held.bytes().fill(7); // still valid: its user holds it
    expect(() => pool.acquire()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_CLOSED' }));
    await expect(pool.acquireAsync()).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_POOL_CLOSED' });
    const buf = held.buffer;
    held.release(); // release after close: freed, no error
    expect(buf.closed).toBe(true);
    expect(openFds().size).toBe(start + 2);
    pool.close(); // idempotent

    waiterPool.close();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_POOL_CLOSED' });
    w.release();
    expect(openFds().size).toBe(start + 1);
  });

  test('a buffer the user closes while it is in use or idle is dropped (no fd leak), and the pool can grow back', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 2 });
    const a = pool.acquire();
    a.buffer.close(); // misuse: the pool owns it; that ends the handle, and the pool drops the buffer
    expect(a.released).toBe(true);
    expect(() => a.release()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(() => a.bytes()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' }));
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, total: 1 });
    expect(openFds().size).toBe(start + 2);

    const b = pool.acquire();
    const kept = b.buffer;
    b.release();
    kept.close(); // closed behind the pool's back while idle
    const c = pool.acquire(); // skips it, makes a fresh one (total was below max)
    expect(c.buffer).not.toBe(kept);
    expect(c.buffer.closed).toBe(false);
    c.bytes().fill(1);
    c.release();
    expect(pool.total).toBe(1);
    expect(openFds().size).toBe(start + 2);
  });

  test('zeroOnRelease clears each buffer when it comes back; off by default', () => {
    using heap = openHeap('system', backend.options());
    using zeroing = heap.createPool({ size: 2 * PAGE, count: 1, zeroOnRelease: true });
    const a = zeroing.acquire();
    a.bytes().fill(0xee);
    const view = a.bytes();
    a.release();
    expect(view.every((x) => x === 0)).toBe(true);
    using keeping = heap.createPool({ size: PAGE, count: 1 });
    const b = keeping.acquire();
    b.bytes().fill(0xee);
    b.release();
    using again = keeping.acquire();
    expect(again.bytes()[PAGE - 1]).toBe(0xee);
  });

  test('a handle the program drops without releasing is returned by the garbage collector', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    (() => {
      pool.acquire().bytes().fill(3);
    })();
    expect(pool.inUse).toBe(1);
    for (let i = 0; i < 10 && pool.inUse; i++) {
      gc();
      await new Promise((r) => setImmediate(r));
    }
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, total: 1 });
    expect(openFds().size).toBe(start + 2);
  });

  test('size is what one buffer really is, before any exists (count 0) and after', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: 100, count: 0, max: 2 });
    expect(pool.size).toBe(heap.pageSize);
    expect(pool.stats()).toMatchObject({ size: heap.pageSize, bytes: 0 });
    const a = await pool.acquireAsync();
    const b = pool.acquire();
    expect([a.size, b.size, a.bytes().length]).toEqual([pool.size, pool.size, pool.size]);
    expect(pool.stats()).toMatchObject({ size: heap.pageSize, bytes: 2 * heap.pageSize });
    a.release();
    b.release();
  });

  test('bad options are TypeError/RangeError before any allocation', () => {
    using heap = openHeap('system', backend.options());
    expect(() => heap.createPool({ size: 0, count: 1 })).toThrow(RangeError);
    expect(() => heap.createPool({ size: PAGE, count: -1 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => heap.createPool({ size: PAGE, count: 1.5 })).toThrow(RangeError);
    expect(() => heap.createPool({ size: PAGE, count: 4, max: 2 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => heap.createPool({ size: PAGE, count: 1, name: 'x'.repeat(40) })).toThrow(RangeError);
    expect(() => heap.createPool({ size: PAGE, count: 1, zeroOnRelease: 'yes' as unknown as boolean })).toThrow(TypeError);
    expect(() => heap.createPool(null as unknown as { size: number; count: number })).toThrow();
    // a misspelt option is refused, not ignored: createPool's, BufferPool's and createShareablePool's own lists
    const typo = { code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.cloexex') };
    expect(() => heap.createPool({ size: PAGE, count: 1, cloexex: true } as { size: number; count: number })).toThrow(expect.objectContaining(typo));
    expect(() => heap.createPool({ size: PAGE, count: 0, cloexec: 'no' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => new BufferPool(heap, { size: PAGE, count: 1, cloexec: true } as { size: number; count: number })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.cloexec') }),
    );
    expect(() => createShareablePool({ size: PAGE, count: 1, cloexex: true } as { size: number; count: number })).toThrow(expect.objectContaining(typo));
    expect(openFds().size).toBe(start + 1);
  });

  test('a failed growth lets the waiters queued behind it grow in turn or fail: none is left waiting', async () => {
    using heap = openHeap('system', backend.options());
    const enomem = () => Object.assign(new Error('ENOMEM: cannot allocate memory'), { code: 'ENOMEM' });
    /** a bound on the wait, so a hang fails here instead of at the jest timeout */
    const settled = <T>(p: Promise<T>) =>
      Promise.race([p.then((v) => ({ v }), (e: unknown) => ({ e })), new Promise<'hung'>((r) => setTimeout(() => r('hung'), 2000).unref())]);

    // every allocation fails: each waiter gets its own try, and its own ENOMEM
    const failing = { alloc: (): never => { throw enomem(); }, allocAsync: () => Promise.reject(enomem()) };
    using dead = new BufferPool(failing, { size: PAGE, count: 0, max: 1 });
    const tries = [dead.acquireAsync(), dead.acquireAsync(), dead.acquireAsync(), dead.acquireAsync()].map(settled);
    expect(dead.stats()).toMatchObject({ waiting: 3, total: 1 });
    expect(await Promise.all(tries)).toEqual(Array(4).fill({ e: expect.objectContaining({ code: 'ENOMEM' }) }));
    expect(dead.stats()).toMatchObject({ waiting: 0, total: 0, inUse: 0 });

    // a source without allocAsync fails the same way (its alloc runs on the growth path)
    using syncDead = new BufferPool({ alloc: failing.alloc }, { size: PAGE, count: 0, max: 1 });
    const syncTries = [syncDead.acquireAsync(), syncDead.acquireAsync()].map(settled);
    expect(await Promise.all(syncTries)).toEqual(Array(2).fill({ e: expect.objectContaining({ code: 'ENOMEM' }) }));

    // the first growth fails, later ones succeed: the waiters behind it get buffers
    let n = 0;
    const flaky = {
      alloc: (size: number | bigint) => heap.alloc(size),
      allocAsync: (size: number | bigint) => (n++ === 0 ? Promise.reject(enomem()) : heap.allocAsync(size)),
    };
    using pool = new BufferPool(flaky, { size: PAGE, count: 0, max: 2 });
    const [first, second, third] = [pool.acquireAsync(), pool.acquireAsync(), pool.acquireAsync()].map(settled);
    expect(pool.stats()).toMatchObject({ waiting: 1, total: 2 });
    expect(await first).toEqual({ e: expect.objectContaining({ code: 'ENOMEM' }) });
    const [b, c] = await Promise.all([second, third]);
    expect(b).toEqual({ v: expect.any(PooledBuffer) });
    expect(c).toEqual({ v: expect.any(PooledBuffer) });
    expect(pool.stats()).toMatchObject({ waiting: 0, inUse: 2, total: 2 });
    for (const r of [b, c]) (r as { v: PooledBuffer }).v.release();
  });

  test('a waiter already queued when the in-use buffer is closed gets a new buffer (it waited for a release that could not come)', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 1 });
    const held = pool.acquire();
    const waiting = pool.acquireAsync({ signal: AbortSignal.timeout(5000) });
    expect(pool.stats()).toMatchObject({ waiting: 1, inUse: 1 });
    held.buffer.close(); // nothing else: the handle is never touched again
    using next = await waiting;
    expect(next.released).toBe(false);
    expect(pool.stats()).toMatchObject({ waiting: 0, inUse: 1, total: 1, idle: 0 });
    expect(held.released).toBe(true);
  });

  test('stats never count a buffer its user closed, in use or idle', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: PAGE, count: 2, max: 3 });
    const a = pool.acquire();
    a.buffer.close();
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, total: 1 });
    const b = pool.acquire();
    const idleBuffer = b.buffer;
    b.release();
    idleBuffer.close(); // a kept DmaBuf, closed while idle
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 0, total: 0 });
  });

  test('an abort during a growth rejects at once; the buffer, once made, goes back to the pool', async () => {
    using heap = openHeap('system', backend.options());
    let finish!: () => void;
    const slow = {
      alloc: (size: number | bigint) => heap.alloc(size),
      allocAsync: (size: number | bigint) => new Promise<ReturnType<typeof heap.alloc>>((resolve) => (finish = () => resolve(heap.alloc(size)))),
    };
    using pool = new BufferPool(slow, { size: PAGE, count: 0, max: 1 });
    const ac = new AbortController();
    const growing = pool.acquireAsync({ signal: ac.signal });
    ac.abort();
    await expect(growing).rejects.toMatchObject({ code: 'ABORT_ERR' });
    finish();
    await new Promise((r) => setImmediate(r));
    expect(pool.stats()).toMatchObject({ inUse: 0, idle: 1, total: 1 });
  });

  test('thousands of waiters behind a source that then fails: each gets the typed error, the stack never overflows', async () => {
    using heap = openHeap('system', backend.options());
    const enomem = () => Object.assign(new Error('ENOMEM: cannot allocate memory'), { code: 'ENOMEM' });
    // no allocAsync: every growth fails inside its synchronous part, which refilled recursively
    let made = 0;
    using pool = new BufferPool({ alloc: (size) => (made++ === 0 ? heap.alloc(size) : (() => { throw enomem(); })()) }, { size: PAGE, count: 1 });
    const held = pool.acquire();
    // 5,000: the recursive refill already overflowed there (1,078 RangeErrors), at a fifth of the cost under TCG
    const waiters = Array.from({ length: 5000 }, () => pool.acquireAsync().then(() => 'ok', (e: { code?: string }) => e.code ?? String(e)));
    held.buffer.close(); // its slot comes back: every waiter tries to grow, and fails
    expect(new Set(await Promise.all(waiters))).toEqual(new Set(['ENOMEM']));
    expect(pool.stats()).toMatchObject({ waiting: 0, total: 0 });
  });

  test('a failing allocation at creation frees the buffers already made', () => {
    using heap = openHeap('system', backend.options());
    let n = 0;
    const source = {
      alloc: (size: number | bigint) => {
        if (++n === 3) throw Object.assign(new Error('ENOMEM: cannot allocate memory'), { code: 'ENOMEM' });
        return heap.alloc(size);
      },
    };
    expect(() => new BufferPool(source, { size: PAGE, count: 4 })).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    expect(openFds().size).toBe(start + 1);
  });
});

describe('shareable pools (allocShareable’s tiers)', () => {
  test('every buffer comes from the strongest tier this host has, mapped once', () => {
    allocShareable(4096).close(); // allocShareable keeps its heap open from its first call on
    const start = openFds().size;
    const pool = createShareablePool({ size: 8192, count: 2, name: 'shared' });
    const a = pool.acquire();
    expect(a.buffer.tier).toBe(nativeKernel() ? (a.buffer.isDmaBuf ? a.buffer.tier : 'memfd') : 'js');
    expect(a.buffer.info().name).toBe('shared');
    a.bytes().fill(5);
    a.release();
    const b = pool.acquire();
    expect(b).toBeInstanceOf(PooledBuffer);
    b.release();
    pool.close();
    expect(openFds().size).toBe(start);
  });

  test('tiers and requireDmaBuf pass through', () => {
    // every key of its list is taken (the unknown-key check must not refuse its own options)
    createShareablePool({ size: 4096, count: 0, max: 1, name: 'n', zeroOnRelease: false, tiers: ['js'], requireDmaBuf: false, heap: 'system', cloexec: true }).close();
    expect(() => createShareablePool({ size: 4096, count: 1, tiers: ['bogus' as 'js'] })).toThrow(TypeError);
    if (!nativeKernel()) {
      expect(() => createShareablePool({ size: 4096, count: 1, requireDmaBuf: true })).toThrow(
        expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_DMA_BUF' }),
      );
    }
  });
});

test('a pool rounds its size to its heap’s pages, not to 4096; a source that rounds further corrects it upward', () => {
  using heap = openHeap('system', { framework: new Framework({ pageSize: 16384 }) });
  using pool = heap.createPool({ size: 100, count: 0 });
  expect(pool.stats()).toMatchObject({ size: 16384, total: 0 });
  using b = pool.acquire();
  expect(b.size).toBe(16384);
  // a source that says nothing of its pages: the host's, then what its buffers really are
  using bigger = new BufferPool({ alloc: () => heap.alloc(3 * 16384) }, { size: 100, count: 0 });
  expect(bigger.size).toBeGreaterThanOrEqual(4096);
  using c = bigger.acquire();
  expect(bigger.stats()).toMatchObject({ size: 3 * 16384, bytes: 3 * 16384 });
  expect(c.size).toBe(bigger.size);
  expect(() => new BufferPool({ pageSize: 0, alloc: () => heap.alloc(1) }, { size: 1, count: 0 })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
});

test('heap.createPool on a closed heap is ERR_DMA_HEAP_CLOSED; a pool outlives its heap’s close', () => {
  const heap = openHeap('system', backends()[0].options());
  const pool = heap.createPool({ size: PAGE, count: 1 });
  heap.close();
  expect(() => heap.createPool({ size: PAGE, count: 1 })).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_CLOSED' }));
  const b = pool.acquire();
  b.bytes().fill(1);
  b.release();
  pool.close();
});
