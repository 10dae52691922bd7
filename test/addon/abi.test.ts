/** src/abi.cc: the ABI facts the C compiler computed from include/dma_heap_abi.h. */
import * as uapi from '../../lib/uapi';
import { A, addonSuite, page } from './helpers';

addonSuite('addon: abi', () => {
  describe('(a) abi', () => {
    test('numbers are the C compiler’s and equal lib/uapi.ts', () => {
      expect(A.abi).toMatchObject({
        DMA_HEAP_IOCTL_ALLOC: 0xc0184800,
        DMA_HEAP_V14_IOCTL_GET_FEATURES: 0x80084800,
        DMA_HEAP_V14_IOCTL_ALLOC: 0xc0184801,
        DMA_BUF_IOCTL_SYNC: 0x40086200,
        DMA_BUF_SET_NAME_A: 0x40046201,
        DMA_BUF_SET_NAME_B: 0x40086201,
        UDMABUF_CREATE: 0x40187542,
        ALLOCATION_DATA_SIZE: 24,
        UDMABUF_CREATE_SIZE: 24,
      });
      expect(A.abi).toMatchObject({
        DMA_HEAP_IOCTL_ALLOC: uapi.DMA_HEAP_IOCTL_ALLOC,
        DMA_HEAP_V14_IOCTL_GET_FEATURES: uapi.DMA_HEAP_V14_IOCTL_GET_FEATURES,
        DMA_HEAP_V14_IOCTL_ALLOC: uapi.DMA_HEAP_V14_IOCTL_ALLOC,
        DMA_BUF_IOCTL_SYNC: uapi.DMA_BUF_IOCTL_SYNC,
        DMA_BUF_SET_NAME_A: uapi.DMA_BUF_SET_NAME_A,
        DMA_BUF_SET_NAME_B: uapi.DMA_BUF_SET_NAME_B,
        UDMABUF_CREATE: uapi.UDMABUF_CREATE,
        ALLOCATION_DATA_SIZE: uapi.ALLOCATION_DATA_SIZE,
        UDMABUF_CREATE_SIZE: uapi.UDMABUF_CREATE_SIZE,
        DMA_HEAP_VALID_FD_FLAGS: uapi.DMA_HEAP_VALID_FD_FLAGS,
        O_CLOEXEC: uapi.O_CLOEXEC,
        O_RDONLY: uapi.O_RDONLY,
        O_RDWR: uapi.O_RDWR,
        O_NOFOLLOW: uapi.O_NOFOLLOW,
        SOCK_STREAM: uapi.SOCK_STREAM,
        SOCK_SEQPACKET: uapi.SOCK_SEQPACKET,
      });
      expect(Object.isFrozen(A.abi)).toBe(true);
    });

    test('page size is the system’s, a power of two', () => {
      expect(page).toBeGreaterThanOrEqual(4096);
      expect(page & (page - 1)).toBe(0);
    });
  });
});
