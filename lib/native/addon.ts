/**
 * The addon's exports (src/*.cc), typed. The addon does syscalls and nothing
 * else: no validation beyond memory safety, no policy, no struct parsing.
 * Every failure throws an Error with `code` (errno name), `errno` (negated, as
 * Node reports it) and `syscall`.
 */
/**
 * ioctl hands the kernel a zeroed scratch of max(arg.length, _IOC_SIZE(cmd), this) bytes
 * (src/heap_device.cc kMinScratch): legacy ioctl numbers encode no size yet write. The
 * software framework gives its handlers the same memory.
 */
export const IOCTL_SCRATCH_MIN = 4096;

export interface AbiFacts {
  /** ioctl numbers and struct sizes as the C compiler computed them from include/dma_heap_abi.h */
  DMA_HEAP_IOCTL_ALLOC: number;
  DMA_HEAP_V14_IOCTL_GET_FEATURES: number;
  DMA_HEAP_V14_IOCTL_ALLOC: number;
  DMA_BUF_IOCTL_SYNC: number;
  DMA_BUF_SET_NAME_A: number;
  DMA_BUF_SET_NAME_B: number;
  UDMABUF_CREATE: number;
  ALLOCATION_DATA_SIZE: number;
  UDMABUF_CREATE_SIZE: number;
  DMA_HEAP_VALID_FD_FLAGS: number;
  O_CLOEXEC: number;
  O_RDONLY: number;
  O_RDWR: number;
  O_NOFOLLOW: number;
  SOCK_STREAM: number;
  SOCK_SEQPACKET: number;
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE: number;
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE: number;
  SYNC_IOC_FILE_INFO: number;
  SYNC_IOC_MERGE: number;
  SYNC_FILE_INFO_SIZE: number;
  SYNC_FENCE_INFO_SIZE: number;
  BUF_SYNC_FILE_SIZE: number;
  POLLIN: number;
  POLLOUT: number;
  POLLERR: number;
  POLLHUP: number;
  POLLNVAL: number;
  UV_READABLE: number;
  UV_WRITABLE: number;
}

export interface ReceivedMessage {
  /** the bytes received (empty with eof at end of stream) */
  payload: Buffer;
  /** fds from SCM_RIGHTS control messages, already O_CLOEXEC (MSG_CMSG_CLOEXEC) */
  fds: number[];
  /** MSG_TRUNC: the payload was longer than maxPayload */
  truncated: boolean;
  /** MSG_CTRUNC: control data was cut (fds lost by the kernel) */
  controlTruncated: boolean;
  /** a control message that was not SCM_RIGHTS arrived (its content is dropped) */
  foreignControl: boolean;
  /** the peer closed (recvmsg returned 0 on a stream socket with no fds) */
  eof: boolean;
}

/** A socket peer's credentials (SO_PEERCRED), as the kernel recorded them at connect() or socketpair(). */
export interface PeerCredentials {
  /** the peer's process id when it connected (a pid can be reused after that process exits) */
  pid: number;
  /** its effective user id at connect() */
  uid: number;
  /** its effective group id at connect() */
  gid: number;
}

export interface Poller {
  /** stop watching; idempotent; the callback is never called afterwards */
  stop(): void;
}

/** ('errno', code, errno, syscall, path?, message) or ('type' | 'range' | 'value', name, expected, value) */
export type ErrorFactory = (kind: string, a: unknown, b: unknown, c: unknown, d?: unknown, e?: unknown) => Error;

export interface Addon {
  readonly abi: AbiFacts;
  /** register the package's error factory (lib/native/load.ts does, once per env): errno
   *  failures and argument checks are then made by it, so they are DmaHeapErrors and
   *  Node-style argument errors like the framework's */
  setErrors(factory: ErrorFactory): void;
  pageSize(): number;

  open(path: string, flags: number): number;
  close(fd: number): void;
  dup(fd: number, cloexec: boolean): number;
  lseek(fd: number, offset: number, whence: number): number;
  /** the addon closes fds it created or was told to own when a worker/env terminates (unless a
   *  close from any thread freed the number meanwhile: ownership is one table per process) */
  own(fd: number): void;
  /** forget an fd without closing it (it was handed elsewhere) */
  disown(fd: number): void;

  /** ioctl(fd, cmd, ptr): arg is copied into a zeroed scratch of max(arg.length, _IOC_SIZE(cmd),
   *  IOCTL_SCRATCH_MIN) bytes and copied back; null passes a NULL pointer. Returns the ioctl's
   *  return value. `fdAt`: the byte offset where a successful call returns a new fd (u32), which
   *  this env then owns at once (so a terminating worker closes it even before JS saw it). */
  ioctl(fd: number, cmd: number, arg: Uint8Array | null, fdAt?: number): number;
  /** the same on the libuv pool; arg is written back when the promise settles */
  ioctlAsync(fd: number, cmd: number, arg: Uint8Array, fdAt?: number): Promise<number>;

  /** mmap(NULL, length, PROT_READ|PROT_WRITE, MAP_SHARED, fd, offset) as an external ArrayBuffer.
   *  `writable` false is refused (TypeError, code 'ERR_DMA_HEAP_READ_ONLY_MAPPING'): V8 has no
   *  read-only ArrayBuffer and a write to PROT_READ pages would kill the process; use readMapped.
   *  Throws code 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS' (after unmapping) when the runtime refuses them. */
  mmap(fd: number, length: number, offset: number, writable: boolean, sizeKnown?: boolean): ArrayBuffer;
  /** `sizeKnown` above: the caller vouches the range lies in a file that cannot shrink below it
   *  (a dma-buf refuses an out-of-range mmap itself; a memfd sealed F_SEAL_SHRINK of that
   *  size), so no fstat. closeMapped: munmap `mapping` (if given, as munmap) then close fd. */
  closeMapped(fd: number, mapping?: ArrayBuffer): void;
  /** closeMapped with the close on the libuv pool: views detach before it returns; resolves
   *  once the fd is closed (the kernel frees a buffer's pages there) */
  closeMappedAsync(fd: number, mapping?: ArrayBuffer): Promise<void>;
  /** DMA_HEAP_IOCTL_ALLOC (or the v14 number) with the struct in native memory: the new fd,
   *  owned by this env from the moment the ioctl returns */
  heapAlloc(heapFd: number, cmd: number, len: number, fdFlags: number): number;
  /** detach the ArrayBuffer then munmap it; no-op if already unmapped; TypeError if not from mmap */
  munmap(buffer: ArrayBuffer): void;
  /** copy without exposing memory: map [offset, offset+dst.length) briefly, memcpy, unmap */
  readMapped(fd: number, offset: number, dst: Uint8Array): void;
  writeMapped(fd: number, offset: number, src: Uint8Array): void;

  memfdCreate(name: string, flags: number): number;
  /** memfd_create(MFD_CLOEXEC|MFD_ALLOW_SEALING), ftruncate(size), F_ADD_SEALS(seals): one call */
  memfdBuffer(name: string, size: number, seals: number): number;
  /** a udmabuf of `size` bytes from a new sealed memfd named `name`, through the open
   *  /dev/udmabuf fd `dev`; the memfd is closed, the new fd owned by this env: one call */
  udmabufBuffer(dev: number, name: string, size: number, cloexec: boolean): number;
  ftruncate(fd: number, length: number): void;
  /** fcntl(F_ADD_SEALS) */
  addSeals(fd: number, seals: number): void;
  /** fcntl(F_GET_SEALS) */
  getSeals(fd: number): number;

  /** AF_UNIX sockets: all O_CLOEXEC and O_NONBLOCK */
  socket(type: number): number;
  socketpair(type: number): [number, number];
  bind(fd: number, path: string): void;
  listen(fd: number, backlog: number): void;
  /** throws EAGAIN when nothing is pending */
  accept(fd: number): number;
  connect(fd: number, path: string): void;
  /** getsockopt(SO_PEERCRED) on a connected AF_UNIX socket: the peer's pid, uid and gid */
  peerCredentials(fd: number): PeerCredentials;
  /** sendmsg with one SCM_RIGHTS message carrying fds (none if empty); MSG_NOSIGNAL|MSG_DONTWAIT */
  sendFds(fd: number, payload: Uint8Array, fds: number[]): number;
  /** recvmsg with MSG_CMSG_CLOEXEC|MSG_DONTWAIT; throws EAGAIN when nothing is ready */
  recvFds(fd: number, maxPayload: number, maxFds: number): ReceivedMessage;
  /** watch fd on the event loop (uv_poll): events 1 = readable, 2 = writable */
  poll(fd: number, events: number, callback: (err: Error | null, events: number) => void): Poller;
  /** poll(2) with a zero timeout: the ready subset of `events` (POLLIN 1, POLLOUT 4, ...) and
   *  POLLERR/POLLHUP/POLLNVAL; on a dma-buf, dma_buf_poll's answer now */
  pollNow(fd: number, events: number): number;
}
