import { ftruncateSync } from 'node:fs';
import { fromFd } from '../../lib/dmabuf';
import { Framework } from '../../lib/framework';
import { loadAddon } from '../../lib/native/load';
import { allocShareable } from '../../lib/tiers';
import { listHeaps, openHeap } from '../../lib/heap';
import { MFD_CLOEXEC } from '../../lib/uapi';
import { backends, newFds, openFds } from '../helpers/backends';
import { testIf } from '../helpers/skip';

const addon = loadAddon();

describe('memfds shared with other processes can’t be shrunk under a mapping (SIGBUS)', () => {
  testIf(addon !== null, 'memfd backing needs the addon')('a software buffer’s memfd is sealed against shrinking', () => {
    using heap = openHeap('system', { framework: new Framework() });
    using buf = heap.alloc(heap.pageSize * 2);
    const view = buf.bytes();
    expect(() => ftruncateSync(buf.fd, 0)).toThrow(expect.objectContaining({ code: 'EPERM' }));
    view[view.length - 1] = 1; // still mapped, still backed
    expect(view[view.length - 1]).toBe(1);
  });

  testIf(addon !== null, 'memfd import needs the addon')('an unsealed memfd from elsewhere is refused, and the caller’s fd kept', () => {
    const fd = addon!.memfdCreate('foreign', MFD_CLOEXEC);
    addon!.ftruncate(fd, 4096);
    const before = openFds();
    try {
      expect(() => fromFd(fd, { dup: false })).toThrow(
        expect.objectContaining({ code: 'EPERM', message: expect.stringMatching(/sealed against shrinking/) }),
      );
      expect(openFds()).toEqual(before);
    } finally {
      addon!.close(fd);
    }
  });
});

describe.each(backends())('heap lifetime around async allocations: $label', (backend) => {
  test('closing a heap while allocAsync runs: the allocation still comes from that heap, then the fd goes', async () => {
    const before = openFds();
    const heap = openHeap('system', backend.options());
    const pending = heap.allocAsync(1 << 20);
    heap.close();
    expect(heap.fd).toBe(-1);
    // A new heap (or anything) opened now must not take over the pending allocation's fd.
    using other = openHeap('system', backend.options());
    using buf = await pending;
    expect(buf.exporter).toBe('system');
    expect(buf.size).toBe(1 << 20);
    buf.close();
    other.close();
    expect(newFds(before)).toEqual([]);
  });
});

describe('a disposed framework is finished', () => {
  test('it opens nothing more, so old handles can never reach a reused number', () => {
    const framework = new Framework();
    const heap = openHeap('system', { framework });
    heap.alloc(4096);
    framework.dispose();
    expect(() => openHeap('system', { framework })).toThrow(expect.objectContaining({ code: 'ENODEV', syscall: 'open' }));
    expect(() => heap.close()).not.toThrow(); // close stays idempotent and harmless (issue 13)
  });
});

describe('options that are not objects are typed errors', () => {
  test.each([
    ['openHeap', () => openHeap('system', 5 as never)],
    ['listHeaps', () => listHeaps('x' as never)],
    ['fromFd', () => fromFd(0, 1 as never)],
    ['allocShareable', () => allocShareable(4096, true as never)],
  ])('%s', (_name, call) => {
    expect(call).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });

  test('null is not "no options": options are a plain object or undefined', () => {
    expect(() => openHeap('system', null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    using heap = openHeap('system');
    expect(() => heap.alloc(4096, null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    using buf = heap.alloc(4096, undefined);
    expect(buf.size).toBe(heap.pageSize);
  });
});
