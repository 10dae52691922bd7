import { DmaBuf } from '../../lib/dmabuf';
import { Framework } from '../../lib/framework';
import type { Kernel } from '../../lib/kernel';
import { openHeap } from '../../lib/heap';
import { INTERNAL_CONSTRUCTOR } from '../../lib/internal-token';
import { backends } from '../helpers/backends';
import { gc, openFds, tick } from '../helpers/fds';

/** let FinalizationRegistry callbacks run: they need a GC and then a turn of the event loop */
async function collect(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
}

describe.each(backends())('buffers a program forgets: $label', (backend) => {
  test('the GC closes a forgotten buffer’s fd and unmaps its memory, once', async () => {
    using h = openHeap('system', backend.options());
    const start = openFds().size;
    (() => {
      for (let i = 0; i < 8; i++) h.alloc(64 * 1024).bytes().fill(i);
    })();
    expect(openFds().size).toBeGreaterThanOrEqual(start + 8);
    await collect();
    expect(openFds().size).toBe(start);
  });

  test("fake timers (jest.useFakeTimers) don't stop forgotten buffers being closed", async () => {
    using h = openHeap('system', backend.options());
    const start = openFds().size;
    await tick(); // nothing of ours is waiting for the next turn: the fakes would see the first ask
    jest.useFakeTimers();
    try {
      (() => {
        for (let i = 0; i < 4; i++) h.alloc(4096).bytes().fill(i);
      })();
    } finally {
      jest.useRealTimers();
    }
    await collect();
    expect(openFds().size).toBe(start);
  });

  test('a mapping still referenced outlives its forgotten DmaBuf (the fd closes, the memory stays)', async () => {
    using h = openHeap('system', backend.options());
    const start = openFds().size;
    const view = (() => {
      const b = h.alloc(4096);
      b.bytes().fill(9);
      return b.bytes();
    })();
    await collect();
    expect(openFds().size).toBe(start);
    expect(view.length).toBe(h.pageSize);
    expect(view[4095]).toBe(9);
  });
});

describe('runtimes that refuse external ArrayBuffers (Electron’s V8 sandbox)', () => {
  /** a kernel whose mmap fails as the addon does under the sandbox */
  function sandboxed(inner: Kernel): Kernel {
    return new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'mmap') {
          return () => {
            throw Object.assign(new Error('external buffers are not allowed'), { code: 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS' });
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }

  test('map() says so with a typed error; read() and write() copy in and out instead', () => {
    const fw = new Framework();
    const hfd = fw.kernel.openHeap('system');
    const heap = openHeap('system', { framework: fw });
    const plain = heap.alloc(8192);
    const buf = new DmaBuf(INTERNAL_CONSTRUCTOR, fw.kernel.dup(plain.fd, true), { kernel: sandboxed(fw.kernel), tier: plain.tier, readOnly: false, heap: 'system' });
    try {
      expect(() => buf.map()).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS', message: expect.stringMatching(/read\(\).*write\(\)/) }));
      // no mapping, so no cpuAccess (never an empty stand-in): the bracket by hand, copying
      expect(() => buf.cpuAccess('write', () => undefined)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS' }));
      buf.beginCpuAccess('write');
      buf.write(Buffer.from('copied'), 4096);
      buf.endCpuAccess('write');
      expect(buf.read(4096, 6).toString()).toBe('copied');
      expect(plain.read(4096, 6).toString()).toBe('copied');
    } finally {
      buf.close();
      plain.close();
      heap.close();
      fw.kernel.close(hfd);
    }
  });
});

describe('the software framework releases what a program forgets', () => {
  test('forgotten buffers and their mappings give their bytes back (fault-injection accounting sees it)', async () => {
    const framework = new Framework();
    using heap = openHeap('system', { framework });
    (() => {
      for (let i = 0; i < 8; i++) heap.alloc(64 * 1024).bytes().fill(1);
    })();
    expect(framework.faults.bytesInUse('system')).toBe(8 * 64 * 1024);
    await collect();
    expect(framework.faults.bytesInUse('system')).toBe(0);
    expect(framework.kernel.fds()).toEqual([heap.fd]);
  });
});
