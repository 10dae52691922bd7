/**
 * Hazard: a pooled handle that outlives its turn. A pool hands the same buffer to one user
 * after another (as V4L2 and GStreamer do), so a PooledBuffer kept after its buffer went back
 * could write into the next user's frame. The matrix walks every way a handle's turn ends
 * (its release, its DmaBuf's, `using`, the pool's close, the user's close of the buffer, the
 * garbage collector, an abort, another pool) over both backends, and asserts for each: every
 * member of the stale handle throws ERR_DMA_HEAP_POOL_RELEASED, a pattern the next user
 * writes is untouched by it, and no fd is left behind.
 *
 * What the pool cannot prevent: a Uint8Array or DmaBuf the user copied out of a handle
 * (`const b = lease.bytes()`) is the pool's memory, not a handle, and keeps aliasing the frame
 * after the turn (as a V4L2 mmap or a GStreamer map kept past unref would). The last test pins
 * that documented behaviour.
 */
import { BufferPool, PooledBuffer } from '../../lib';
import type { DmaBuf } from '../../lib/dmabuf';
import { openHeap, type Heap } from '../../lib/heap';
import { backends } from '../helpers/backends';
import { gc, gcUntil, newFds, openFds, tick } from '../helpers/fds';

const RELEASED = expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_RELEASED' });
const FRAME = 0x5a;

interface Stage {
  heap: Heap;
  /** count 1, max 1: the next acquire gets the very buffer the stale handle held, if it is back */
  pool: BufferPool;
}

/** One way a turn ends: returns the stale handle (null when the collector took it). */
type Way = (s: Stage) => Promise<PooledBuffer | null> | PooledBuffer | null;

const WAYS: Record<string, Way> = {
  'released by its handle': ({ pool }) => {
    const lease = pool.acquire();
    lease.release();
    return lease;
  },
  'released by its DmaBuf': ({ pool }) => {
    const lease = pool.acquire();
    pool.release(lease.buffer);
    return lease;
  },
  'released twice by its handle': ({ pool }) => {
    const lease = pool.acquire();
    const buf = lease.buffer;
    lease.release();
    expect(() => lease.release()).toThrow(RELEASED);
    expect(() => pool.release(lease)).toThrow(RELEASED);
    expect(() => pool.release(buf)).toThrow(RELEASED);
    return lease;
  },
  'released twice by its DmaBuf': ({ pool }) => {
    const lease = pool.acquire();
    const buf = lease.buffer;
    pool.release(buf);
    expect(() => pool.release(buf)).toThrow(RELEASED);
    expect(() => pool.release(lease)).toThrow(RELEASED);
    return lease;
  },
  'used after its `using` block': ({ pool }) => {
    let kept: PooledBuffer;
    {
      using lease = pool.acquire();
      kept = lease;
    }
    return kept;
  },
  'pool closed while leased, then released': ({ pool }) => {
    const lease = pool.acquire();
    pool.close();
    lease.bytes().fill(1); // documented: an in-use buffer stays its user's until released
    const buf = lease.buffer;
    lease.release();
    expect(buf.closed).toBe(true); // freed, not kept: the pool is closed
    return lease;
  },
  'its buffer closed by the user while leased': ({ pool }) => {
    const lease = pool.acquire();
    lease.buffer.close();
    expect(lease.released).toBe(true);
    return lease;
  },
  'collected while a release by its DmaBuf races the finalizer': async ({ pool }) => {
    // drop the lease, keep its DmaBuf; a later job, so no WeakRef keeps it alive this one
    const { buf, probe } = ((): { buf: DmaBuf; probe: WeakRef<PooledBuffer> } => {
      const lease = pool.acquire();
      return { buf: lease.buffer, probe: new WeakRef(lease) };
    })();
    await tick();
    gc(); // collected now; its finalizer runs from a later task...
    expect(probe.deref()).toBeUndefined();
    pool.release(buf); // ...and this release comes first
    const next = pool.acquire(); // the same buffer, the next user's turn
    expect(next.buffer).toBe(buf);
    // the late finalizer must not take the buffer back from under the next user
    for (let i = 0; i < 5; i++) {
      gc();
      await tick();
      await tick();
    }
    expect(next.released).toBe(false);
    expect(pool.stats()).toMatchObject({ inUse: 1, idle: 0, total: 1 });
    next.release();
    return null;
  },
  'granted to acquireAsync, then its signal aborted': async ({ pool }) => {
    const held = pool.acquire();
    const ac = new AbortController();
    const granted = pool.acquireAsync({ signal: ac.signal });
    held.release(); // the waiter gets the buffer now
    ac.abort(); // too late: it is granted
    const lease = await granted;
    expect(lease.released).toBe(false);
    lease.bytes().fill(1);
    lease.release();
    expect(held.released).toBe(true);
    return lease;
  },
  'waiting when the pool closed, then the holder released': async ({ pool }) => {
    const held = pool.acquire();
    const waiting = pool.acquireAsync();
    pool.close();
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_POOL_CLOSED' });
    const buf = held.buffer;
    held.release(); // no waiter is granted it after close: freed
    expect(buf.closed).toBe(true);
    return held;
  },
  'released to a pool that did not hand it out': ({ heap, pool }) => {
    using other = heap.createPool({ size: heap.pageSize, count: 1 });
    const theirs = other.acquire();
    expect(() => pool.release(theirs)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_FOREIGN' }));
    expect(() => pool.release(theirs.buffer)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_FOREIGN' }));
    expect(theirs.released).toBe(false); // left untouched...
    theirs.release(); // ...until its own pool takes it
    expect(() => pool.release(theirs)).toThrow(RELEASED);
    return theirs;
  },
  'from a zeroOnRelease pool, released by its DmaBuf': ({ pool }) => {
    expect(pool.zeroOnRelease).toBe(true);
    const lease = pool.acquire();
    const view = lease.bytes();
    view.fill(0xee);
    pool.release(lease.buffer);
    expect(view.every((x) => x === 0)).toBe(true); // cleared on the way back, whichever way
    return lease;
  },
};

/** every member a handle has: each must refuse a stale one */
const MEMBERS: Array<[string, (h: PooledBuffer) => unknown]> = [
  ['bytes', (h) => h.bytes().fill(0xff)],
  ['buffer', (h) => h.buffer.write(Buffer.from([0xff]))],
  ['fd', (h) => h.fd],
  ['size', (h) => h.size],
  ['release', (h) => h.release()],
];

const matrix = backends().flatMap((backend) => Object.keys(WAYS).map((way) => ({ backend, way, name: `${backend.label}: ${way}` })));

describe('a pooled handle after its turn: refused on every member, never in the next frame, no fd leak', () => {
  test.each(matrix)('$name', async ({ backend, way }) => {
    const before = openFds();
    {
      using heap = openHeap('system', backend.options());
      using pool = heap.createPool({ size: heap.pageSize, count: 1, zeroOnRelease: way.includes('zeroOnRelease') });
      const stale = await WAYS[way]({ heap, pool });
      if (stale) {
        expect(stale.released).toBe(true);
        for (const [, use] of MEMBERS) expect(() => use(stale)).toThrow(RELEASED);
        stale[Symbol.dispose](); // `using` after the turn ended: nothing
      }
      if (!pool.closed) {
        // the next user writes its frame; the stale handle gets nowhere near it
        using next = pool.acquire();
        next.bytes().fill(FRAME);
        if (stale) for (const [, use] of MEMBERS) expect(() => use(stale)).toThrow(RELEASED);
        expect(next.bytes().every((x) => x === FRAME)).toBe(true);
        expect(pool.stats()).toMatchObject({ inUse: 1, total: 1 });
      }
    }
    expect(await gcUntil(() => newFds(before).length === 0)).toBe(true);
  });
});

describe.each(backends())('what the pool cannot prevent: $label', (backend) => {
  test('a view or DmaBuf copied out of a handle is the pool’s memory, not a handle: it aliases the next user’s frame', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: heap.pageSize, count: 1 });
    const lease = pool.acquire();
    const view = lease.bytes();
    const buf = lease.buffer;
    lease.release();
    expect(() => lease.bytes()).toThrow(RELEASED); // the handle is refused...
    using next = pool.acquire();
    next.bytes().fill(FRAME);
    expect(view[0]).toBe(FRAME); // ...but the kept view sees the next frame
    view[0] = 1;
    expect(next.bytes()[0]).toBe(1); // and writes into it: documented, as with V4L2 mmap
    expect(buf).toBe(next.buffer); // the kept DmaBuf is the next user's buffer
    expect(buf.read(0, 1)[0]).toBe(1);
  });

  test('once the buffer is freed (released after close, or closed by its user), a kept view is detached', () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: heap.pageSize, count: 2 });
    const a = pool.acquire();
    const b = pool.acquire();
    const [viewA, viewB] = [a.bytes(), b.bytes()];
    b.buffer.close();
    expect(viewB.length).toBe(0);
    pool.close();
    a.release();
    expect(viewA.length).toBe(0);
  });
});

describe.each(backends())('a closed buffer holds no slot: $label', (backend) => {
  test('closed by its user while leased, its handle never touched again: the next acquire() gets a new buffer', async () => {
    const before = openFds();
    {
      using heap = openHeap('system', backend.options());
      using pool = heap.createPool({ size: heap.pageSize, count: 1 });
      const lease = pool.acquire();
      lease.buffer.close(); // and the handle is left alone: nothing tells the pool
      using next = pool.acquire(); // was ERR_DMA_HEAP_POOL_EXHAUSTED: the closed buffer kept the slot
      next.bytes().fill(FRAME);
      expect(pool.stats()).toMatchObject({ inUse: 1, total: 1 });
      expect(() => lease.bytes()).toThrow(RELEASED);
      expect(() => pool.acquire()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_POOL_EXHAUSTED' }));
    }
    expect(await gcUntil(() => newFds(before).length === 0)).toBe(true);
  });

  test('the same through acquireAsync: it grows instead of waiting for a release that cannot come', async () => {
    using heap = openHeap('system', backend.options());
    using pool = heap.createPool({ size: heap.pageSize, count: 1 });
    pool.acquire().buffer.close();
    using next = await pool.acquireAsync({ signal: AbortSignal.timeout(5000) });
    expect(next.released).toBe(false);
    expect(pool.stats()).toMatchObject({ inUse: 1, total: 1, waiting: 0 });
  });
});
