/**
 * To a child: each buffer's (or sync_file's) fd goes in spawn's stdio, DMA_HEAP_FDS tells
 * the child which.
 */
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { DmaBuf } from '../dmabuf';
import type { SyncFile } from '../sync-file';
import { validateOptions } from '../args';
import { adoptAll, sendableFds, validateBuffers, type ShareItem } from './buffers';
import { DmaBufChannelError } from './errors';
import { badMeta, type BufferMeta, type SyncFileMeta } from './frame';
import { closeAll, sockets } from './socket';

/** The environment variable that tells a child which fds are buffers (JSON, see InheritedBufferMeta). */
export const FDS_ENV = 'DMA_HEAP_FDS';

export type InheritedBufferMeta = (BufferMeta | SyncFileMeta) & {
  fd: number;
};

function stdioArray(stdio: StdioOptions | undefined): Exclude<StdioOptions, string> {
  if (stdio === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  const out = [...stdio];
  while (out.length < 3) out.push('pipe');
  return out;
}

/** child_process.spawn's documented options (Node 20) */
const SPAWN_OPTIONS = [
  'cwd', 'env', 'argv0', 'stdio', 'detached', 'uid', 'gid', 'serialization', 'shell',
  'windowsVerbatimArguments', 'windowsHide', 'signal', 'timeout', 'killSignal',
] as const;

/**
 * child_process.spawn, with each buffer's or sync_file's fd added to the child's stdio (after the
 * entries `options.stdio` has: fds 3, 4, ... by default) and DMA_HEAP_FDS telling
 * the child which they are. The child calls inheritedItems() (or inheritedBuffers() when
 * only DmaBufs are sent). The parent keeps its items and may close them as soon as this
 * returns. A software framework's SyncFile is refused (ERR_DMA_HEAP_NOT_SHAREABLE).
 *
 * @param command the program, as for spawn
 * @param args its arguments, as for spawn
 * @param buffers the DmaBufs and SyncFiles the child gets (at most 253)
 * @param options spawn's own options (an unknown key is refused, not ignored as spawn would)
 * @returns the ChildProcess, as spawn returns it
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options or an item
 * that is no DmaBuf or SyncFile; RangeError `ERR_OUT_OF_RANGE` for more than 253 items.
 * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` / `ERR_SYNC_FILE_CLOSED` for a closed item;
 * `ERR_DMA_HEAP_NOT_SHAREABLE` for a 'js' buffer or a software SyncFile.
 * @throws Error whatever spawn itself throws synchronously.
 * @example
 * ```ts
 * import { allocShareable, spawnWithBuffers } from 'dma-heap';
 * using buf = allocShareable(1 << 20, { tiers: ['dma-heap', 'udmabuf', 'memfd'] });
 * const child = spawnWithBuffers(process.execPath, ['consumer.js'], [buf], { stdio: 'inherit' });
 * child.on('exit', (code) => console.log('consumer exited', code));
 * ```
 */
export function spawnWithBuffers(command: string, args: readonly string[], buffers: ShareItem[], options: SpawnOptions = {}): ChildProcess {
  options = validateOptions(options, SPAWN_OPTIONS); // a misspelt key is refused, not ignored as spawn would
  const metas = validateBuffers(buffers);
  const stdio = stdioArray(options.stdio);
  const described: InheritedBufferMeta[] = metas.map((m, i) => ({ fd: stdio.length + i, ...m }));
  // (a buffer that passed validateBuffers has an fd: the addon is there)
  const sock = buffers.length ? sockets() : null;
  const { fds, owned } = sock ? sendableFds(sock, buffers) : { fds: [], owned: false }; // a read-only software buffer goes O_RDONLY
  try {
    return spawn(command, args, {
      ...options,
      // libuv dup2()s each to its position in the child, which clears O_CLOEXEC there only.
      stdio: [...stdio, ...fds],
      env: { ...(options.env ?? process.env), [FDS_ENV]: JSON.stringify(described) },
    });
  } finally {
    if (owned) closeAll(sock!, fds); // the child has its own now
  }
}

/**
 * In a child started by spawnWithBuffers: the DmaBufs it was given, in order. A sync_file
 * given too is closed here: a child that is sent sync_files calls inheritedItems().
 *
 * @returns the buffers, in the order the parent gave them; [] when there are none (or on a second call)
 * @throws As {@link inheritedItems}: {@link DmaBufChannelError} `ERR_DMA_HEAP_BAD_MESSAGE` for a
 * malformed DMA_HEAP_FDS or an fd that is not what it says; Error `ERR_DMA_HEAP_NO_ADDON`.
 * @example
 * ```ts
 * import { inheritedBuffers } from 'dma-heap';
 * const [frame] = inheritedBuffers(); // in consumer.js
 * frame.cpuAccess('read', (bytes) => console.log(bytes[0]));
 * frame.close();
 * ```
 */
export function inheritedBuffers(): DmaBuf[] {
  const items = inheritedItems();
  for (const item of items) if (!(item instanceof DmaBuf)) item.close();
  return items.filter((i): i is DmaBuf => i instanceof DmaBuf);
}

/**
 * In a child started by spawnWithBuffers: the DmaBufs and SyncFiles it was given, in order
 * (a sync_file fd is checked with SYNC_IOC_FILE_INFO). Adopts them once (the variable is then
 * removed, so a second call returns []). Each fd is replaced by an O_CLOEXEC duplicate, so the
 * child's own children don't inherit them.
 *
 * @returns the DmaBufs and SyncFiles, in the order the parent gave them; [] when there are none
 * (or on a second call)
 * @throws {@link DmaBufChannelError} `ERR_DMA_HEAP_BAD_MESSAGE`: reason 'malformed' for a
 * DMA_HEAP_FDS that is no list of fd descriptions; 'notDmaBuf' or 'notSyncFile' (or 'malformed'
 * for a size that differs) for an fd that is not what it says, and then every inherited fd is closed.
 * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon, when DMA_HEAP_FDS is set.
 * @example
 * ```ts
 * import { DmaBuf, inheritedItems } from 'dma-heap';
 * for (const item of inheritedItems()) {
 *   if (item instanceof DmaBuf) console.log(item.size);
 *   item.close();
 * }
 * ```
 */
export function inheritedItems(): Array<DmaBuf | SyncFile> {
  const text = process.env[FDS_ENV];
  if (text === undefined) return [];
  delete process.env[FDS_ENV];
  let entries: InheritedBufferMeta[];
  try {
    entries = JSON.parse(text);
    if (!Array.isArray(entries)) throw new Error('not an array');
    for (const e of entries) {
      const why = badMeta(e) ?? (Number.isSafeInteger(e.fd) && e.fd >= 3 ? undefined : `bad fd ${JSON.stringify(e.fd)}`);
      if (why) throw new Error(why);
    }
  } catch (err) {
    throw new DmaBufChannelError('ERR_DMA_HEAP_BAD_MESSAGE', 'malformed', `${FDS_ENV} is malformed: ${(err as Error).message}`);
  }
  const fds = entries.map((e) => e.fd);
  return adoptAll(sockets(), fds, entries, (i) => `inherited fd ${fds[i]}`);
}
