/**
 * The ABI codec: ioctl numbers and struct layouts, encoded and decoded in one
 * place so the real kernel (through the addon) and the software framework are
 * fed the very same bytes. Facts from include/dma_heap_abi.h.
 */

// asm-generic _IOC layout (x86, arm, arm64, riscv): nr 8 bits, type 8, size 14, dir 2.
export const IOC_NRBITS = 8;
export const IOC_TYPEBITS = 8;
export const IOC_SIZEBITS = 14;
export const IOC_NRSHIFT = 0;
export const IOC_TYPESHIFT = 8;
export const IOC_SIZESHIFT = 16;
export const IOC_DIRSHIFT = 30;
export const IOC_NONE = 0;
/** userspace writes, the kernel reads: the "IN" direction */
export const IOC_WRITE = 1;
/** the kernel writes back: the "OUT" direction */
export const IOC_READ = 2;
export const IOC_IN = (IOC_WRITE << IOC_DIRSHIFT) >>> 0;
export const IOC_OUT = (IOC_READ << IOC_DIRSHIFT) >>> 0;

export function IOC(dir: number, type: number | string, nr: number, size: number): number {
  const t = typeof type === 'string' ? type.charCodeAt(0) : type;
  return (
    ((dir << IOC_DIRSHIFT) | (t << IOC_TYPESHIFT) | (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0
  );
}
export const IO = (type: number | string, nr: number) => IOC(IOC_NONE, type, nr, 0);
export const IOR = (type: number | string, nr: number, size: number) => IOC(IOC_READ, type, nr, size);
export const IOW = (type: number | string, nr: number, size: number) => IOC(IOC_WRITE, type, nr, size);
export const IOWR = (type: number | string, nr: number, size: number) =>
  IOC(IOC_READ | IOC_WRITE, type, nr, size);

export interface IocFields {
  dir: number;
  type: number;
  nr: number;
  size: number;
}
export function iocDecode(cmd: number): IocFields {
  return {
    dir: cmd >>> IOC_DIRSHIFT,
    type: (cmd >>> IOC_TYPESHIFT) & ((1 << IOC_TYPEBITS) - 1),
    nr: (cmd >>> IOC_NRSHIFT) & ((1 << IOC_NRBITS) - 1),
    size: (cmd >>> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1),
  };
}

// Open flags as the kernel ABI spells them (Linux generic values; fd_flags is Linux ABI
// even when the software framework runs on another OS).
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_NOCTTY = 0o400;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
/** O_NOFOLLOW and O_LARGEFILE are where the generic table and arm's disagree (as the addon's
 *  abi facts, from the C compiler, say: test/addon/abi.test.ts checks them) */
export const O_NOFOLLOW = process.arch === 'arm' || process.arch === 'arm64' ? 0o100000 : 0o400000;
/** open(2) forces it on 64-bit kernels; fdinfo shows it for a heap device */
export const O_LARGEFILE =
  process.arch === 'arm' || process.arch === 'ia32' ? 0 : process.arch === 'arm64' ? 0o400000 : process.arch === 'ppc64' ? 0o200000 : 0o100000;

// AF_UNIX socket types (Linux, every architecture Node runs on but MIPS)
export const SOCK_STREAM = 1;
export const SOCK_SEQPACKET = 5;

// dma-heap
export const DMA_HEAP_MAGIC = 'H';
export const ALLOCATION_DATA_SIZE = 24;
/** where ALLOC returns the new fd: struct dma_heap_allocation_data.fd */
export const ALLOCATION_DATA_FD_OFFSET = 8;
export const DMA_HEAP_IOCTL_ALLOC = IOWR(DMA_HEAP_MAGIC, 0, ALLOCATION_DATA_SIZE); // 0xC0184800
export const DMA_HEAP_VALID_FD_FLAGS = O_CLOEXEC | O_ACCMODE;
export const DMA_HEAP_VALID_HEAP_FLAGS = 0n;
export const DMA_HEAP_V14_IOCTL_GET_FEATURES = IOR(DMA_HEAP_MAGIC, 0, 8); // 0x80084800
export const DMA_HEAP_V14_IOCTL_ALLOC = IOWR(DMA_HEAP_MAGIC, 1, ALLOCATION_DATA_SIZE); // 0xC0184801
export const NUM_HEAP_MINORS = 128;

// dma-buf
export const DMA_BUF_BASE = 'b';
export const DMA_BUF_SYNC_READ = 1n;
export const DMA_BUF_SYNC_WRITE = 2n;
export const DMA_BUF_SYNC_RW = 3n;
export const DMA_BUF_SYNC_START = 0n;
export const DMA_BUF_SYNC_END = 4n;
export const DMA_BUF_SYNC_VALID_FLAGS_MASK = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END;
export const DMA_BUF_IOCTL_SYNC = IOW(DMA_BUF_BASE, 0, 8); // 0x40086200
export const DMA_BUF_SET_NAME_A = IOW(DMA_BUF_BASE, 1, 4); // 0x40046201
export const DMA_BUF_SET_NAME_B = IOW(DMA_BUF_BASE, 1, 8); // 0x40086201
export const DMA_BUF_NAME_LEN = 32;

// udmabuf
export const UDMABUF_CREATE_SIZE = 24;
export const UDMABUF_CREATE = IOW('u', 0x42, UDMABUF_CREATE_SIZE); // 0x40187542
export const UDMABUF_SIZE_LIMIT_DEFAULT = 64 * 1024 * 1024;

// memfd
export const MFD_CLOEXEC = 1;
export const MFD_ALLOW_SEALING = 2;
export const F_SEAL_SEAL = 1;
export const F_SEAL_SHRINK = 2;
export const F_SEAL_GROW = 4;
export const F_SEAL_WRITE = 8;
export const F_SEAL_FUTURE_WRITE = 16;

export const U64_MAX = (1n << 64n) - 1n;

/** struct dma_heap_allocation_data: { u64 len; u32 fd; u32 fd_flags; u64 heap_flags } */
export interface AllocationData {
  len: bigint;
  fd: number;
  fdFlags: number;
  heapFlags: bigint;
}

/** Encode into `into` (default: a fresh 24-byte struct); `into` may be longer or shorter. */
export function encodeAllocationData(d: AllocationData, into: Uint8Array = new Uint8Array(ALLOCATION_DATA_SIZE)): Uint8Array {
  const full = new Uint8Array(Math.max(into.length, ALLOCATION_DATA_SIZE));
  full.set(into);
  const v = new DataView(full.buffer);
  v.setBigUint64(0, BigInt.asUintN(64, d.len), true);
  v.setUint32(8, d.fd >>> 0, true);
  v.setUint32(12, d.fdFlags >>> 0, true);
  v.setBigUint64(16, BigInt.asUintN(64, d.heapFlags), true);
  into.set(full.subarray(0, into.length));
  return into;
}

/** Decode; bytes a short struct lacks read as zero, as the kernel zero-fills them. */
export function decodeAllocationData(bytes: Uint8Array): AllocationData {
  const full = new Uint8Array(ALLOCATION_DATA_SIZE);
  full.set(bytes.subarray(0, ALLOCATION_DATA_SIZE));
  const v = new DataView(full.buffer);
  return {
    len: v.getBigUint64(0, true),
    fd: v.getUint32(8, true),
    fdFlags: v.getUint32(12, true),
    heapFlags: v.getBigUint64(16, true),
  };
}

export function encodeU64(x: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, x), true);
  return b;
}
export function decodeU64(bytes: Uint8Array): bigint {
  const full = new Uint8Array(8);
  full.set(bytes.subarray(0, 8));
  return new DataView(full.buffer).getBigUint64(0, true);
}

/** SET_NAME takes a pointer to a C string: the argument bytes are the name and its NUL. */
export function encodeName(name: string): Uint8Array {
  const utf8 = Buffer.from(name, 'utf8');
  const b = new Uint8Array(utf8.length + 1);
  b.set(utf8);
  return b;
}

const SAFE_LEN = BigInt(Number.MAX_SAFE_INTEGER);

/** PAGE_ALIGN on a u64 (pageSize a power of two), wrapping like the kernel's size_t arithmetic does. */
export function pageAlign(len: bigint, pageSize: number): bigint {
  // Every real length is below 2^53, where doubles align it exactly: one BigInt made, not eight.
  if (len >= 0n && len <= SAFE_LEN) return BigInt(Math.ceil(Number(len) / pageSize) * pageSize);
  const p = BigInt(pageSize);
  return BigInt.asUintN(64, len + p - 1n) & ~(p - 1n) & U64_MAX;
}
