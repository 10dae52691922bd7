/**
 * Both kernels fail the same way for the same mistake, with the same class: a DmaHeapError
 * carrying code, errno and syscall, whether the real kernel (through the addon) or the
 * software framework said no. Each case is one mistake a program can make.
 */
import { nativeKernel } from '../../lib/chooser';
import { DmaHeapError } from '../../lib/errors';
import { Framework } from '../../lib/framework';
import type { Kernel } from '../../lib/kernel';
import { ALLOCATION_DATA_FD_OFFSET, decodeAllocationData, DMA_HEAP_IOCTL_ALLOC, encodeAllocationData, O_CLOEXEC, O_RDWR } from '../../lib/uapi';
import { backends, type TestBackend } from '../helpers/backends';
import { testIf } from '../helpers/skip';

/** the raw kernel under a backend, and a heap fd and a dma-buf fd from it */
function open(backend: TestBackend): { kernel: Kernel; heapFd: number; bufFd: number; done(): void } {
  const framework = backend.options().framework as Framework | undefined;
  const kernel: Kernel = framework?.kernel ?? nativeKernel()!;
  const heapFd = kernel.openHeap('system');
  const arg = encodeAllocationData({ len: BigInt(kernel.pageSize), fd: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0n });
  kernel.ioctl(heapFd, DMA_HEAP_IOCTL_ALLOC, arg, ALLOCATION_DATA_FD_OFFSET);
  const bufFd = decodeAllocationData(arg).fd;
  return {
    kernel,
    heapFd,
    bufFd,
    done() {
      for (const fd of [bufFd, heapFd]) {
        try {
          kernel.close(fd);
        } catch {
          // closed by the case
        }
      }
    },
  };
}

function thrown(fn: () => unknown): DmaHeapError {
  try {
    fn();
  } catch (err) {
    return err as DmaHeapError;
  }
  throw new Error('did not throw');
}

describe.each(backends())('the same mistake, the same error: $label', (backend) => {
  test('fdinfo of a closed fd is EBADF (the framework used to say ENOENT)', () => {
    const k = open(backend);
    const fd = k.bufFd;
    k.kernel.close(fd);
    const err = thrown(() => k.kernel.fdinfo(fd));
    expect(err).toBeInstanceOf(DmaHeapError);
    expect(err).toMatchObject({ code: 'EBADF', errno: -9 });
    k.done();
  });

  test.each([
    ['close', (k: Kernel, fd: number) => k.close(fd), 'close'],
    ['dup', (k: Kernel, fd: number) => k.dup(fd, true), 'dup'],
    ['lseek', (k: Kernel, fd: number) => k.seekEnd(fd), 'lseek'],
    ['mmap', (k: Kernel, fd: number) => k.mmap(fd, 4096, 0, true), 'mmap'],
  ] as const)('%s of a closed fd: DmaHeapError EBADF, syscall %s', (_name, call, syscall) => {
    const k = open(backend);
    const fd = k.bufFd;
    k.kernel.close(fd);
    const err = thrown(() => call(k.kernel, fd));
    expect(err).toBeInstanceOf(DmaHeapError);
    expect(err).toMatchObject({ code: 'EBADF', errno: -9, syscall });
    k.done();
  });

  test('a heap device is not seekable (ESPIPE) and has no mmap (ENODEV)', () => {
    const k = open(backend);
    expect(thrown(() => k.kernel.seekEnd(k.heapFd))).toMatchObject({ code: 'ESPIPE', syscall: 'lseek' });
    // a read-only mapping (readMapped's): the native mmap() refuses to expose read-only pages as
    // an ArrayBuffer before any syscall, so only this path reaches the kernel on both kernels
    const err = thrown(() => k.kernel.readMapped(k.heapFd, 0, new Uint8Array(16)));
    expect(err).toBeInstanceOf(DmaHeapError);
    expect(err).toMatchObject({ code: 'ENODEV', syscall: 'mmap' });
    k.done();
  });

  test('an unaligned mmap offset is EINVAL; a length of 0 is EINVAL', () => {
    const k = open(backend);
    expect(thrown(() => k.kernel.mmap(k.bufFd, 4096, 1, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    expect(thrown(() => k.kernel.mmap(k.bufFd, 0, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    k.done();
  });

  test('an ioctl the dma-buf does not know is ENOTTY', () => {
    const k = open(backend);
    const err = thrown(() => k.kernel.ioctl(k.bufFd, 0x40086263, new Uint8Array(8)));
    expect(err).toBeInstanceOf(DmaHeapError);
    expect(err).toMatchObject({ code: 'ENOTTY', syscall: 'ioctl' });
    k.done();
  });
});

describe('the addon’s own errors are DmaHeapErrors too', () => {
  const native = nativeKernel();
  testIf(native !== null, 'needs the native addon')('a native EBADF is instanceof DmaHeapError with code, errno, syscall', () => {
    const err = thrown(() => native!.close(2 ** 30));
    expect(err).toBeInstanceOf(DmaHeapError);
    expect(err).toMatchObject({ name: 'DmaHeapError', code: 'EBADF', errno: -9, syscall: 'close' });
  });
});
