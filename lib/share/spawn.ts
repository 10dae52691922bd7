/**
 * To a child: each buffer's fd goes in spawn's stdio, DMA_HEAP_FDS tells the child which.
 */
import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import type { DmaBuf } from '../dmabuf';
import { adoptAll, validateBuffers } from './buffers';
import { DmaBufChannelError } from './errors';
import { badMeta, type BufferMeta } from './frame';
import { sockets } from './socket';

/** The environment variable that tells a child which fds are buffers (JSON, see InheritedBufferMeta). */
export const FDS_ENV = 'DMA_HEAP_FDS';

export interface InheritedBufferMeta extends BufferMeta {
  fd: number;
}

function stdioArray(stdio: StdioOptions | undefined): Exclude<StdioOptions, string> {
  if (stdio === undefined) return ['pipe', 'pipe', 'pipe'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  const out = [...stdio];
  while (out.length < 3) out.push('pipe');
  return out;
}

/**
 * child_process.spawn, with each buffer's fd added to the child's stdio (after the
 * entries `options.stdio` has: fds 3, 4, ... by default) and DMA_HEAP_FDS telling
 * the child which they are. The child calls inheritedBuffers(). The parent keeps its
 * buffers and may close them as soon as this returns.
 */
export function spawnWithBuffers(command: string, args: readonly string[], buffers: DmaBuf[], options: SpawnOptions = {}): ChildProcess {
  const metas = validateBuffers(buffers);
  const stdio = stdioArray(options.stdio);
  const described: InheritedBufferMeta[] = metas.map((m, i) => ({ fd: stdio.length + i, ...m }));
  return spawn(command, args, {
    ...options,
    // libuv dup2()s each to its position in the child, which clears O_CLOEXEC there only.
    stdio: [...stdio, ...buffers.map((b) => b.fd)],
    env: { ...(options.env ?? process.env), [FDS_ENV]: JSON.stringify(described) },
  });
}

/**
 * In a child started by spawnWithBuffers: the buffers it was given, in order. Adopts
 * them once (the variable is then removed, so a second call returns []). Each fd is
 * replaced by an O_CLOEXEC duplicate, so the child's own children don't inherit them.
 */
export function inheritedBuffers(): DmaBuf[] {
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
