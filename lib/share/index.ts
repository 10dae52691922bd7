/**
 * Passing dma-bufs between processes without copying: to a child through spawn's
 * stdio (spawn.ts), to any process through an AF_UNIX socket (channel.ts, SCM_RIGHTS).
 *
 * Workers need nothing of this: a worker shares the process's fd table, but the
 * addon closes the fds each JS environment owns when it ends, so hand a worker
 * the fd number and let it take its own reference with `fromFd(fd, { dup: true })`
 * while the sender still holds the buffer.
 */
export { DmaBufChannel, type ChannelMessage, type LendItem, type LendResult, type ChannelOptions, type ChannelType, type DmaBufChannelEvents } from './channel';
export { DmaBufServer, type DmaBufServerEvents } from './server';
export { type ListenOptions, type PeerCredentials, type RefusedConnectionReason } from './listener';
export { DmaBufChannelError, type BadReason, type ClosedReason, type DmaBufChannelErrorCode } from './errors';
export { type ShareItem } from './buffers';
export { MAX_FDS_PER_MESSAGE, type BufferMeta, type ItemMeta, type SyncFileMeta } from './frame';
export { FDS_ENV, inheritedBuffers, inheritedItems, spawnWithBuffers, type InheritedBufferMeta } from './spawn';
export * from './unixfd';
