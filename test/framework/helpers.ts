import { DmaHeapError } from '../../lib/errors';
import { Framework, type FrameworkOptions } from '../../lib/framework';
import { addonStatus, loadAddon } from '../../lib/native/load';
import {
  decodeAllocationData,
  DMA_HEAP_IOCTL_ALLOC,
  encodeAllocationData,
  O_CLOEXEC,
  O_RDWR,
} from '../../lib/uapi';
import { openFds } from '../helpers/fds';
import { describeIf } from '../helpers/skip';

export const addonLoaded = loadAddon() !== null;

/**
 * Every framework test file runs once per backing: memfd (the addon loaded) and js. The memfd
 * half is skipped, and says so in its name, when the addon is not built or DMA_HEAP_ADDON=0.
 */
export function eachBacking(body: (make: (options?: FrameworkOptions) => Framework, backing: 'memfd' | 'js') => void): void {
  for (const backing of ['memfd', 'js'] as const) {
    const run = backing === 'js' || addonLoaded;
    describeIf(run, addonStatus().reason ?? 'memfd backing needs the native addon')(`${backing} backing`, () => {
      const made: Framework[] = [];
      afterEach(() => {
        for (const fw of made.splice(0)) fw.dispose();
      });
      body((options) => {
        const fw = new Framework({ backing, ...options });
        made.push(fw);
        return fw;
      }, backing);
    });
  }
}

/** Fail the file if it leaves real descriptors open. */
export function checkNoFdLeaks(): void {
  let before: Set<number>;
  beforeAll(() => {
    before = openFds();
  });
  afterAll(() => {
    const leaked = [...openFds()].filter((fd) => !before.has(fd));
    expect(leaked).toEqual([]);
  });
}

/** what fn threw (a test failure if it did not) */
export function thrown(fn: () => unknown): DmaHeapError {
  try {
    fn();
  } catch (e) {
    return e as DmaHeapError;
  }
  throw new Error('expected a throw');
}

/** DMA_HEAP_IOCTL_ALLOC on a heap fd; returns the dma-buf fd */
export function alloc(fw: Framework, heapFd: number, len: number | bigint, fdFlags = O_RDWR | O_CLOEXEC): number {
  const arg = encodeAllocationData({ len: BigInt(len), fd: 0, fdFlags, heapFlags: 0n });
  expect(fw.kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg)).toBe(0);
  return decodeAllocationData(arg).fd;
}

/** open a heap, allocate one buffer, close the heap; returns the buffer's fd */
export function allocFrom(fw: Framework, heap: string, len: number | bigint, fdFlags = O_RDWR | O_CLOEXEC): number {
  const heapFd = fw.kernel.openHeap(heap);
  try {
    return alloc(fw, heapFd, len, fdFlags);
  } finally {
    fw.kernel.close(heapFd);
  }
}

export const fdinfoField = (fw: Framework, fd: number, key: string): string | undefined =>
  fw
    .kernel.fdinfo(fd)
    .split('\n')
    .find((l) => l.startsWith(`${key}:\t`))
    ?.slice(key.length + 2);

export { openFds };
