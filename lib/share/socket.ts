/**
 * The one module of lib/share/ that reaches the addon: AF_UNIX sockets, SCM_RIGHTS,
 * closing received fds. The rest of lib/share/ gets a `Sockets` from here and
 * never imports the addon itself (test/layout.test.ts checks it).
 */
import type { Addon } from '../native/addon';
import { invalidArgValue } from '../args';
import { addonMissing } from '../errors';
import { addonStatus, loadAddon } from '../native/load';
import { SOCK_SEQPACKET, SOCK_STREAM } from '../uapi';

import type { PeerCredentials, Poller } from '../native/addon';
export type { PeerCredentials, Poller, ReceivedMessage } from '../native/addon';

/** The addon's socket and fd calls, and nothing else of it. */
export type Sockets = Pick<
  Addon,
  'socket' | 'socketpair' | 'bind' | 'listen' | 'accept' | 'connect' | 'peerCredentials' | 'sendFds' | 'recvFds' | 'poll' | 'dup' | 'close'
>;

/** A channel's socket: 'seqpacket' (the kernel keeps message boundaries) or 'stream' (frames carry their length). */
export type ChannelType = 'seqpacket' | 'stream';

export const READABLE = 1;
export const WRITABLE = 2;

/** The socket calls; ERR_DMA_HEAP_NO_ADDON where the addon did not load. */
export function sockets(): Sockets {
  const addon = loadAddon();
  if (!addon) throw addonMissing('passing buffers between processes', addonStatus().reason);
  return addon;
}

/** SOCK_SEQPACKET or SOCK_STREAM for a channel type; ERR_INVALID_ARG_VALUE for anything else. */
export function socketType(type: ChannelType | undefined): number {
  if (type === undefined || type === 'seqpacket') return SOCK_SEQPACKET;
  if (type === 'stream') return SOCK_STREAM;
  throw invalidArgValue('options.type', type, "must be 'seqpacket' or 'stream'");
}

/** Close fds that are ours and no one else's; the first error must not leak the rest. */
export function closeAll(sock: Sockets, fds: Iterable<number>): void {
  for (const fd of fds) {
    try {
      sock.close(fd);
    } catch {
      // The number is freed even when close reports an error.
    }
  }
}

/** The peer of a connected socket (SO_PEERCRED), frozen; on failure the fd, handed over, is closed. */
export function peerOf(sock: Sockets, fd: number): Readonly<PeerCredentials> {
  try {
    const c = sock.peerCredentials(fd);
    return Object.freeze({ pid: c.pid, uid: c.uid, gid: c.gid });
  } catch (err) {
    closeAll(sock, [fd]);
    throw err;
  }
}

/**
 * The watch on a connected socket, for exactly the events something waits for (READABLE,
 * WRITABLE): re-armed only when they change, dropped when nothing waits (a watched socket keeps
 * the event loop alive). DmaBufChannel and the unixfd connections share it.
 */
export class SocketWatch {
  #poller: Poller | null = null;
  #events = 0;

  constructor(
    private readonly sock: Sockets,
    private readonly fd: number,
    private readonly onEvent: (err: Error | null) => void,
  ) {}

  /** Watch for `events` (0: none); throws what poll() throws, watching nothing then. */
  set(events: number): void {
    if (events === this.#events) return;
    this.stop();
    if (!events) return;
    this.#poller = this.sock.poll(this.fd, events, this.onEvent);
    this.#events = events;
  }

  stop(): void {
    this.#poller?.stop();
    this.#poller = null;
    this.#events = 0;
  }
}
