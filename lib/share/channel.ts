/**
 * To any process: a DmaBufChannel over an AF_UNIX socket (SCM_RIGHTS). Framing is frame.ts,
 * stream reassembly reassembler.ts, adopting received fds buffers.ts, the server that accepts
 * channels server.ts (on listener.ts); the socket calls come from socket.ts.
 */
import { EventEmitter } from 'node:events';
import { invalidArgType, invalidArgValue, validateArray, validateBoolean, validateInteger, validateOptions } from '../args';
import { DmaBuf } from '../dmabuf';
import { PooledBuffer } from '../pool';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from '../internal-token';
import { openFdStat, wrongFdKind } from '../fd-kind';
import { SyncFile } from '../sync-file';
import { adoptAll, sendableFds, validateBuffers, type ShareItem } from './buffers';
import { bad, closed, DmaBufChannelError } from './errors';
import { badMeta, decodeHeader, encodeFrame, encodeRelease, FLAG_LENT, FLAG_RELEASE, HEADER, isLendId, limits, MAX_LEND_ID, MAX_RELEASE_IDS, releaseIds, type Header, type ItemMeta } from './frame';
import { LISTEN_OPTIONS, validatePath, type ListenOptions } from './listener';
import { Borrowed, Loans } from './loan';
import { StreamReassembler } from './reassembler';
import { DmaBufServer } from './server';
import { closeAll, peerOf, READABLE, SocketWatch, socketType, sockets, WRITABLE, type ChannelType, type PeerCredentials, type ReceivedMessage, type Sockets } from './socket';

export type { ChannelType } from './socket';

const CHANNEL_OPTIONS = ['type', 'maxFds', 'maxPayload'] as const;
const FROM_FD_OPTIONS = [...CHANNEL_OPTIONS, 'dup'] as const;

/** Options of a channel's ends: {@link DmaBufChannel.connect}, `listen`, `pair`, `fromFd`. */
export interface ChannelOptions {
  /** 'seqpacket' (default): the kernel keeps message boundaries; 'stream': frames carry their length */
  type?: ChannelType;
  /** most fds one received message may carry (default 64, at most 253); more is a bad message */
  maxFds?: number;
  /** most bytes of JSON (buffer descriptions + payload) in one message (default 64 KiB, at most 16 MiB;
   *  a seqpacket message must also fit the socket's send buffer, ~208 KiB by default) */
  maxPayload?: number;
}

/**
 * One received message: its buffers and sync_files (now this process's) and the payload.
 * release() (or `using`) closes them; for a lent message (see {@link DmaBufChannel.lend}) it also
 * tells the sender, whose buffers then come back: release it as soon as you are done, and only
 * once your CPU access and device work on its buffers are over (its views are gone after).
 */
export interface ChannelMessage<P = unknown> {
  /** the received dma-bufs, in the order sent, now this process's to close */
  buffers: DmaBuf[];
  /** the received sync_files, in the order sent, now this process's to close */
  syncFiles: SyncFile[];
  /** everything received, in the order sent: each a DmaBuf or a SyncFile (the same objects as above) */
  items: ShareItem[];
  /**
   * The sender's payload, as JSON.parse returned it (undefined if none was sent). Typed `P` on
   * the receiver's word (the channel's `Receive` type parameter): nothing checks that the peer
   * sent a P, so validate it before trusting it when the peer is another program.
   */
  payload: P;
  /** whether the sender lent it (channel.lend()): it waits for release() to reuse the buffers */
  readonly lent: boolean;
  /** whether the message was released (release(), `using`, or, lent, the garbage collector) */
  readonly released: boolean;
  /**
   * Done with the message: close its buffers and sync_files (every view of them is detached)
   * and, lent, send the release that gives them back to the sender. Exactly once, however it is
   * reached: release(), `using`, or the garbage collector once the message and all its buffers
   * and sync_files are unreachable (a lent message only; closing a buffer yourself releases
   * nothing). A message sent with send() has the same release(), with nothing to send.
   *
   * @returns true when this call released it; false when it already was (nothing done)
   */
  release(): boolean;
  /** release(), for `using` (`for await (using msg of channel)`) */
  [Symbol.dispose](): void;
}

/** What channel.lend() carries: dma-bufs, sync_files and pool leases (back to their pool on return). */
export type LendItem = ShareItem | PooledBuffer;

/** How a loan ended: `'released'` (the receiver released the message) or `'closed'` (the channel ended first). */
export type LendResult = 'released' | 'closed';

/** the one holder of this end's loans: the peer */
const PEER = Symbol('peer');

const noop = () => undefined;

/** A received message (ChannelMessage): released once, by hand, by `using` or (lent) by the GC. */
class Received<P> implements ChannelMessage<P> {
  buffers: DmaBuf[];
  syncFiles: SyncFile[];
  items: ShareItem[];
  payload: P;
  /** lent: the loan; sent: null, and #items/#done do its work */
  readonly #loan: Borrowed | null;
  readonly #items: readonly ShareItem[];
  #done = false;

  constructor(items: ShareItem[], payload: P, giveBack: (() => void) | null) {
    this.buffers = items.filter((i): i is DmaBuf => i instanceof DmaBuf);
    this.syncFiles = items.filter((i): i is SyncFile => i instanceof SyncFile);
    this.items = items;
    this.payload = payload;
    this.#items = giveBack ? [] : [...items];
    this.#loan = giveBack ? new Borrowed(this, items, giveBack) : null;
  }

  get lent(): boolean {
    return this.#loan !== null;
  }

  get released(): boolean {
    return this.#loan ? this.#loan.released : this.#done;
  }

  release(): boolean {
    if (this.#loan) return this.#loan.release();
    if (this.#done) return false;
    this.#done = true;
    for (const item of this.#items) {
      try {
        item.close();
      } catch {
        // already closed by the program: nothing more to do
      }
    }
    return true;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/** what sendmsg says when the peer is gone */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN']);

interface Waiter {
  /** what the peer sent, before the receiver's assertion of its payload type */
  resolve(m: ChannelMessage<unknown>): void;
  reject(err: Error): void;
}

interface Outgoing {
  frame: Buffer;
  sent: number;
  fds: number[];
  /** whether `fds` are our own duplicates (a queued send must not depend on the caller's fds staying open) */
  dups: boolean;
  resolve(): void;
  reject(err: Error): void;
}

/** The events of a DmaBufChannel and their arguments. */
export interface DmaBufChannelEvents {
  /** a message `for await` skipped, or a release frame refused (reasons 'badRelease', 'unknownLoan'...): its fds closed */
  refused: [err: DmaBufChannelError];
  /** the channel ended: ERR_DMA_HEAP_CHANNEL_CLOSED, its `reason` says why */
  close: [reason: DmaBufChannelError];
}

/** @inline */
type ChannelListener<K extends keyof DmaBufChannelEvents> = (...args: DmaBufChannelEvents[K]) => void;

// Typed events without needing a generic EventEmitter in the user's @types/node. (The type
// parameters are the class's: a merged declaration must repeat them.)
export interface DmaBufChannel<Receive = unknown, Send = Receive> {
  /**
   * Listen for `event` (the events and their arguments: {@link DmaBufChannelEvents}).
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  on<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Listen for the next `event` only.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  once<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Listen for `event`, as on().
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  addListener<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Listen for `event`, ahead of the listeners already there.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  prependListener<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Listen for the next `event` only, ahead of the listeners already there.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  prependOnceListener<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Stop a listener, as removeListener().
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  off<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Stop a listener added for `event`.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  removeListener<K extends keyof DmaBufChannelEvents>(event: K, listener: ChannelListener<K>): this;
  /**
   * Call `event`'s listeners (the package emits its own events; this is EventEmitter's, typed).
   *
   * @param event the event's name
   * @param args the event's arguments
   * @returns whether it had listeners
   */
  emit<K extends keyof DmaBufChannelEvents>(event: K, ...args: DmaBufChannelEvents[K]): boolean;
}

/**
 * One end of a connection that carries buffers: `send(buffers, payload)` on one side,
 * `receive()` (or `for await`) on the other. Nothing blocks: the socket is watched on
 * the event loop only while a receive or a send is waiting. Emits 'refused' (a message
 * `for await` skipped, DmaBufChannelError) and 'close' (why it ended); never 'error'.
 *
 * `Receive` types the payloads that arrive, `Send` the ones sent (default: the same), as in
 * `DmaBufChannel.connect<Frame>(path)` or, for requests and replies,
 * `DmaBufChannel.listen<Request, Reply>(path)`. Payloads travel as JSON: `Send` should be a
 * type JSON keeps (no Date, Map, BigInt, undefined members), and `Receive` is the receiver's
 * assertion about what the peer sends: it is not validated.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class DmaBufChannel<Receive = unknown, Send = Receive> extends EventEmitter {
  /** 'seqpacket' or 'stream': both ends must have the same */
  readonly type: ChannelType;
  /**
   * Who is at the other end (SO_PEERCRED), read once when the channel was made: `pid`, `uid`,
   * `gid` of the process that connect()ed (on a server's channel), of the server that listen()ed
   * (on connect()'s), of the process that made the pair (pair(), and an end of one fromFd()
   * adopted). The pid is the peer's at connect time: that process may have exited since, and
   * the number been reused. Frozen.
   */
  readonly peer: PeerCredentials;
  readonly #sock: Sockets;
  #fd: number;
  readonly #maxFds: number;
  readonly #maxPayload: number;
  readonly #watcher: SocketWatch;
  #ended: DmaBufChannelError | null = null;
  readonly #waiters: Waiter[] = [];
  readonly #outgoing: Outgoing[] = [];
  /** stream channels: the frame being read */
  readonly #stream: StreamReassembler<Header> | null;
  /** lender: what this end lent that has not come back, by lend id (the holder: the peer) */
  readonly #loans = new Loans<number, typeof PEER>();
  #nextLend = 1;
  /** borrower: the lend ids of received messages not released yet */
  readonly #borrowed = new Set<number>();
  /** a message (or its refusal) read while no receive() waited, reading for releases: the next receive() takes it */
  #parked: { message: ChannelMessage<unknown> } | { err: DmaBufChannelError } | null = null;
  /** the release frame queued and not started yet: releases made meanwhile join it */
  #pendingRelease: { out: Outgoing; ids: number[] } | null = null;

  /**

   * Not for users: DmaBufChannel.connect(), pair(), fromFd() or a DmaBufServer make one (the token is the package's own).

   *

   * @hidden

   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, sock: Sockets, fd: number, type: ChannelType, options: ChannelOptions = {}, peer?: PeerCredentials) {
    checkConstructorToken(token, 'DmaBufChannel.connect(), pair(), fromFd() or DmaBufChannel.listen()');
    super();
    this.peer = peer ? Object.freeze(peer) : peerOf(sock, fd); // the fd was handed to this channel
    this.#sock = sock;
    this.#fd = fd;
    this.#watcher = new SocketWatch(sock, fd, (err) => this.#onPoll(err));
    this.type = type;
    ({ maxFds: this.#maxFds, maxPayload: this.#maxPayload } = limits(options));
    this.#stream = type === 'stream' ? new StreamReassembler(sock, HEADER, (head) => decodeHeader(head, this.#maxPayload)) : null;
  }

  /**
   * Connect to a DmaBufServer listening at `path` (it must have the same type).
   *
   * @param path the server's socket path (a leading NUL: Linux's abstract namespace)
   * @param options `type`, `maxFds`, `maxPayload`
   * @returns the connected channel
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad path or options;
   * RangeError `ERR_OUT_OF_RANGE` for maxFds or maxPayload out of range.
   * @throws {@link DmaHeapError} connect's errno: `ENOENT` (no socket there), `ECONNREFUSED` (no one
   * listens), `EPROTOTYPE` (the server's type differs)...
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon (passing fds needs it).
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * using channel = DmaBufChannel.connect('/tmp/camera.sock');
   * const msg = await channel.receive();
   * for (const buf of msg.buffers) buf.close();
   * ```
   */
  static connect<Receive = unknown, Send = Receive>(path: string, options?: ChannelOptions): DmaBufChannel<Receive, Send> {
    const sock = sockets();
    options = validateOptions(options, CHANNEL_OPTIONS);
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const type = options.type === undefined ? 'seqpacket' : options.type;
    limits(options);
    validatePath(path);
    const fd = sock.socket(socketType(type));
    try {
      sock.connect(fd, path);
    } catch (err) {
      closeAll(sock, [fd]);
      throw err;
    }
    return new DmaBufChannel<Receive, Send>(INTERNAL_CONSTRUCTOR, sock, fd, type, options);
  }

  /**
   * Listen at `path` (a filesystem socket; removed again by server.close()). Its channels are
   * DmaBufChannel<Receive, Send>: they receive what a client's channel sends.
   *
   * Who may connect: `mode` and `group` set the socket file's permission bits and group before
   * anyone can connect (connecting needs write permission; an abstract socket has no file, so
   * they are refused there); `allow(peer)` sees each client's pid, uid and gid (SO_PEERCRED)
   * before 'connection' does, and anything but `true` closes the connection at once;
   * `maxConnections` bounds how many are open at once. A connection closed for either is
   * reported as 'refusedConnection' (peer, reason, error?), never as an error.
   *
   * @param path where to bind (a leading NUL: Linux's abstract namespace)
   * @param options the accepted channels' `type`, `maxFds`, `maxPayload`; listen's `backlog`
   * (default 511); who may connect: `mode`, `group`, `allow`, `maxConnections` ({@link ListenOptions})
   * @returns the server; it emits 'connection' with each accepted DmaBufChannel
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad path or options
   * (`mode` or `group` with an abstract path, a group name /etc/group does not have);
   * RangeError `ERR_OUT_OF_RANGE` for a backlog, mode, gid, maxConnections, maxFds or maxPayload
   * out of range.
   * @throws {@link DmaHeapError} bind's, lchown's, chmod's or listen's errno: `EADDRINUSE` (the
   * path exists), `EACCES`, `EPERM` (a group the process may not give)...
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon (passing fds needs it).
   * @example
   * ```ts
   * import { DmaBufChannel, openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * const server = DmaBufChannel.listen('/tmp/camera.sock', {
   *   mode: 0o660,                                   // owner and group may connect
   *   allow: (peer) => peer.uid === process.getuid!() || peer.uid === 1000,
   *   maxConnections: 8,
   * });
   * server.on('refusedConnection', (peer, reason) => console.warn('refused', peer, reason));
   * server.on('connection', (channel) => {
   *   using buf = heap.alloc(4096);
   *   channel.send([buf], { frame: 0 }).finally(() => channel.close());
   * });
   * ```
   */
  static listen<Receive = unknown, Send = Receive>(path: string, options?: ChannelOptions & ListenOptions): DmaBufServer<Receive, Send> {
    const sock = sockets();
    options = validateOptions(options, [...CHANNEL_OPTIONS, ...LISTEN_OPTIONS]);
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    return new DmaBufServer<Receive, Send>(INTERNAL_CONSTRUCTOR, sock, path, options, (fd, peer) => {
      return new DmaBufChannel<Receive, Send>(INTERNAL_CONSTRUCTOR, sock, fd, options.type === undefined ? 'seqpacket' : options.type, options, peer);
    });
  }

  /**
   * Two connected ends (socketpair): for tests, or to hand one end to a child through stdio.
   * What one end sends the other receives: the first receives A and sends B.
   *
   * @param options both ends' `type`, `maxFds`, `maxPayload`
   * @returns the two ends
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options; RangeError
   * `ERR_OUT_OF_RANGE` for maxFds or maxPayload out of range.
   * @throws {@link DmaHeapError} socketpair's errno (`EMFILE`...).
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon (passing fds needs it).
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * const [a, b] = DmaBufChannel.pair<{ hello: number }>();
   * await a.send([], { hello: 1 });
   * console.log((await b.receive()).payload); // { hello: 1 }
   * a.close();
   * b.close();
   * ```
   */
  static pair<A = unknown, B = A>(options?: ChannelOptions): [DmaBufChannel<A, B>, DmaBufChannel<B, A>] {
    const sock = sockets();
    options = validateOptions(options, CHANNEL_OPTIONS);
    const type = options.type === undefined ? 'seqpacket' : options.type;
    limits(options);
    const [a, b] = sock.socketpair(socketType(type));
    return [new DmaBufChannel<A, B>(INTERNAL_CONSTRUCTOR, sock, a, type, options), new DmaBufChannel<B, A>(INTERNAL_CONSTRUCTOR, sock, b, type, options)];
  }

  /**
   * Adopt a connected AF_UNIX socket, e.g. one end of a pair() inherited through stdio.
   * The channel works on an O_CLOEXEC duplicate; the socket must be non-blocking (pair()'s
   * are, and a child shares that flag with its parent). As DmaBuf.fromFd and SyncFile.fromFd:
   * `dup` (default true) leaves the caller's fd open and theirs; false closes it on success.
   *
   * @param fd a connected AF_UNIX socket
   * @param options `type` (the socket's: default 'seqpacket'), `maxFds`, `maxPayload`, `dup`
   * @returns the channel
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options; RangeError
   * `ERR_OUT_OF_RANGE` for an fd outside [0, 2^31-1] or limits out of range.
   * @throws {@link DmaHeapError} `ENOTSOCK` for an fd that is no socket (left open and the
   * caller's); `EBADF` (syscall fstat) for an fd that is not open.
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon (passing fds needs it).
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * using channel = DmaBufChannel.fromFd(3); // the end a parent put in stdio[3]
   * for await (const msg of channel) for (const buf of msg.buffers) buf.close();
   * ```
   */
  static fromFd<Receive = unknown, Send = Receive>(fd: number, options?: ChannelOptions & { dup?: boolean }): DmaBufChannel<Receive, Send> {
    const sock = sockets();
    options = validateOptions(options, FROM_FD_OPTIONS);
    validateInteger(fd, 'fd', 0, 0x7fffffff);
    const dup = validateBoolean(options.dup, 'options.dup', true);
    const type = options.type === undefined ? 'seqpacket' : options.type;
    socketType(type);
    limits(options);
    // Refuse anything but a socket before touching the caller's fd: it stays theirs then.
    if (!openFdStat(fd).isSocket()) throw wrongFdKind(fd, 'socket');
    const own = sock.dup(fd, true);
    // dup: false hands the number over: it was the caller's to close, now it is gone (a channel
    // taking it silently while the caller still used it let a reused number close another file)
    if (!dup) closeAll(sock, [fd]);
    return new DmaBufChannel<Receive, Send>(INTERNAL_CONSTRUCTOR, sock, own, type, options);
  }

  /** the socket's fd; -1 once closed */
  get fd(): number {
    return this.#fd;
  }

  /** whether the channel ended (close(), the peer, an error): `endReason` says why */
  get closed(): boolean {
    return this.#ended !== null;
  }

  /**
   * Send buffers and sync_files, in any order (each fd is duplicated into the receiver by
   * the kernel: the caller keeps its own) and a JSON-able payload. Resolves once the kernel
   * has it all. A software framework's SyncFile is refused (ERR_DMA_HEAP_NOT_SHAREABLE). The
   * payload is a `Send`; it may be left out only where `Send` allows undefined (the default
   * `unknown` does).
   *
   * @param buffers the DmaBufs and SyncFiles to send (at most 253, SCM_MAX_FD); the caller keeps them
   * @param payload a `Send`, as JSON.stringify takes it (received as `payload`); optional where `Send` allows undefined
   * @throws Rejects (never throws) with {@link DmaBufChannelError} `ERR_DMA_HEAP_CHANNEL_CLOSED`
   * once the channel ended; {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED`, `ERR_SYNC_FILE_CLOSED` or
   * `ERR_DMA_HEAP_NOT_SHAREABLE` (a 'js' buffer, a software SyncFile) for an item; TypeError
   * `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for an item that is neither, or a payload JSON
   * can't carry; RangeError `ERR_OUT_OF_RANGE` for too many items or a message over maxPayload;
   * {@link DmaHeapError} from dup or sendmsg.
   * @example
   * ```ts
   * import { DmaBufChannel, openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(1 << 20);
   * const [a, b] = DmaBufChannel.pair();
   * await a.send([buf], { width: 640, height: 480 });
   * const { buffers, payload } = await b.receive();
   * ```
   */
  send(buffers: ShareItem[], ...payload: undefined extends Send ? [payload?: Send] : [payload: Send]): Promise<void> {
    if (this.#ended) return Promise.reject(this.#ended);
    let frame: Buffer;
    let fds: { fds: number[]; owned: boolean };
    try {
      frame = encodeFrame(validateBuffers(buffers), payload[0], this.#maxPayload);
      fds = sendableFds(this.#sock, buffers);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => this.#enqueue({ frame, sent: 0, fds: fds.fds, dups: fds.owned, resolve, reject }));
  }

  /**
   * Lend buffers, sync_files and pool leases with a payload: sent as send() sends, but the
   * receiver gives them back (its message's release(), `using`, or its garbage collector), and
   * the promise says when. Until then they are the receiver's to use: do not write a lent
   * buffer, nor a lent lease (it stays out of its pool). A lease is the channel's from this call
   * on: it goes back to its pool when the loan ends, whichever way (released, the channel closed,
   * the send refused), so a pool is a ring whose backpressure is the consumer's releases:
   * `for (;;) { const lease = await pool.acquireAsync(); fill(lease.bytes()); void channel.lend([lease], meta); }`.
   * DmaBufs and SyncFiles stay the caller's, as with send(). The receiver must know lent frames
   * (WIRE-FORMAT.md: this package, or a peer that reads the lent flag); while loans are out the
   * channel reads the socket for releases even when no receive() waits (a message that arrives
   * meanwhile waits for the next receive(), and reading pauses until it is taken).
   *
   * @param items the DmaBufs, SyncFiles and PooledBuffers to lend (at most 253, SCM_MAX_FD)
   * @param payload a `Send`, as send() takes it; optional where `Send` allows undefined
   * @returns a promise of `'released'` (the receiver released the message: the buffers are yours
   *   again, the leases back in their pools) or `'closed'` (the channel ended first: nothing will
   *   come back, the receiver may still hold the buffers; the leases are back in their pools)
   * @throws Rejects (never throws) with {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED`,
   * `ERR_SYNC_FILE_CLOSED`, `ERR_DMA_HEAP_POOL_RELEASED` (a lease already released) or
   * `ERR_DMA_HEAP_NOT_SHAREABLE` for an item; TypeError `ERR_INVALID_ARG_TYPE` /
   * `ERR_INVALID_ARG_VALUE` for an item of another kind, or a payload JSON can't carry; RangeError
   * `ERR_OUT_OF_RANGE` for too many items or a message over maxPayload; {@link DmaHeapError} from
   * dup or sendmsg. A channel that ended is no error: `'closed'`.
   * @example
   * ```ts
   * import { DmaBufChannel, openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ size: 1 << 20, count: 2 });
   * const [producer, consumer] = DmaBufChannel.pair<{ frame: number }>();
   * const lease = await pool.acquireAsync();
   * lease.bytes().fill(0x80);
   * const back = producer.lend([lease], { frame: 0 });
   * {
   *   using msg = await consumer.receive(); // msg.lent: true
   *   console.log(msg.payload.frame, msg.buffers[0].size);
   * } // released: the lease is back in the pool
   * console.log(await back); // 'released'
   * ```
   */
  lend(items: LendItem[], ...payload: undefined extends Send ? [payload?: Send] : [payload: Send]): Promise<LendResult> {
    try {
      validateArray(items, 'items', 'an array of DmaBuf, SyncFile or PooledBuffer');
    } catch (err) {
      return Promise.reject(err);
    }
    // the channel's from here: each goes back to its pool when the loan ends, however it ends
    const leases = items.filter((i): i is PooledBuffer => i instanceof PooledBuffer);
    const giveBackLeases = () => {
      for (const lease of leases) lease[Symbol.dispose]();
    };
    if (this.#ended) {
      giveBackLeases();
      return Promise.resolve('closed');
    }
    let frame: Buffer;
    let fds: { fds: number[]; owned: boolean };
    const id = this.#nextLendId();
    try {
      const shared = items.map((i) => (i instanceof PooledBuffer ? i.buffer : i)); // a released lease throws
      frame = encodeFrame(validateBuffers(shared), payload[0], this.#maxPayload, id);
      fds = sendableFds(this.#sock, shared);
    } catch (err) {
      giveBackLeases();
      return Promise.reject(err);
    }
    return new Promise<LendResult>((resolve, reject) => {
      let failed: { err: Error } | null = null;
      this.#loans.lend(id, [PEER], () => {
        giveBackLeases();
        if (failed) reject(failed.err);
        else resolve(this.#ended ? 'closed' : 'released');
      });
      const onSendFailed = (err: Error) => {
        // the channel's end resolves every loan 'closed' (#end); this frame alone failed: it is back
        if (this.#ended) return;
        failed = { err };
        this.#loans.giveBack(id, PEER);
      };
      this.#enqueue({ frame, sent: 0, fds: fds.fds, dups: fds.owned, resolve: noop, reject: onSendFailed });
    });
  }

  /** a lend id not out now: counting up from 1, wrapping at 2^32 - 1 */
  #nextLendId(): number {
    for (;;) {
      const id = this.#nextLend;
      this.#nextLend = id === MAX_LEND_ID ? 1 : id + 1;
      if (!this.#loans.has(id)) return id;
    }
  }

  /** Queue a frame and send what the socket takes now; a frame that has to wait holds its own fds. */
  #enqueue(out: Outgoing): void {
    this.#outgoing.push(out);
    this.#flush();
    if (this.#outgoing.includes(out) && out.sent === 0 && !out.dups && out.fds.length) {
      // It waits for the socket: hold our own references, the caller may close theirs.
      const dups: number[] = [];
      try {
        for (const fd of out.fds) dups.push(this.#sock.dup(fd, true));
        out.fds = dups;
        out.dups = true;
      } catch (err) {
        closeAll(this.#sock, dups);
        this.#outgoing.splice(this.#outgoing.indexOf(out), 1);
        out.reject(err as Error);
      }
    }
    this.#watch();
  }

  /** a giveBack for Borrowed: made here, so that it holds the channel and the id and nothing of the message */
  #giveBackFor(id: number): () => void {
    return () => {
      if (this.#borrowed.delete(id)) this.#queueRelease(id);
    };
  }

  /** Tell the lender `id` is back: a release frame, or a place in the one still waiting to go. */
  #queueRelease(id: number): void {
    if (this.#ended) return;
    const pending = this.#pendingRelease;
    if (pending && pending.out.sent === 0 && pending.ids.length < MAX_RELEASE_IDS && this.#outgoing.includes(pending.out)) {
      pending.ids.push(id);
      pending.out.frame = encodeRelease(pending.ids);
      return;
    }
    const ids = [id];
    const out: Outgoing = { frame: encodeRelease(ids), sent: 0, fds: [], dups: false, resolve: noop, reject: noop };
    this.#pendingRelease = { out, ids };
    this.#enqueue(out);
  }

  /**
   * The next message, its payload typed `Receive` on your word (see ChannelMessage.payload).
   * Rejects with a DmaBufChannelError for a bad message (the channel goes on) or when the
   * channel is over.
   *
   * @returns the message: its buffers and sync_files are now this process's to close
   * @throws Rejects with {@link DmaBufChannelError} `ERR_DMA_HEAP_BAD_MESSAGE` (refused, its fds
   * closed; the channel goes on) or `ERR_DMA_HEAP_CHANNEL_CLOSED` (the channel ended: `reason`).
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * const [a, b] = DmaBufChannel.pair<string>();
   * void a.send([], 'ping');
   * const { payload } = await b.receive(); // payload: string
   * ```
   */
  receive(): Promise<ChannelMessage<Receive>> {
    const parked = this.#parked;
    if (parked) {
      // read while reading for releases; reading (paused for it) goes on
      this.#parked = null;
      this.#read();
      this.#watch();
      return 'message' in parked ? Promise.resolve(parked.message as ChannelMessage<Receive>) : Promise.reject(parked.err);
    }
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise<ChannelMessage<Receive>>((resolve, reject) => {
      // the one place a peer's JSON becomes a Receive: the user's assertion, unchecked
      this.#waiters.push({ resolve: resolve as (m: ChannelMessage<unknown>) => void, reject });
      this.#read();
      this.#watch();
    });
  }

  /**
   * Messages until the channel ends. Nothing a peer sends can make the loop throw: a refused
   * message (its fds already closed) is skipped and emitted as 'refused'; the channel ending
   * for any reason (close(), the peer hanging up, a stream that can't be followed) ends the
   * loop, and `endReason` says why.
   *
   * @returns an async iterator of messages, done when the channel ends
   * @throws Nothing: a refused message is skipped (and emitted as 'refused'), an end ends the loop.
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * using channel = DmaBufChannel.connect('/tmp/camera.sock');
   * for await (const { buffers, payload } of channel) {
   *   console.log(payload);
   *   for (const buf of buffers) buf.close();
   * }
   * console.log(channel.endReason?.reason);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<ChannelMessage<Receive>> {
    for (;;) {
      let m: ChannelMessage<Receive>;
      try {
        m = await this.receive();
      } catch (err) {
        if ((err as DmaBufChannelError).code === 'ERR_DMA_HEAP_BAD_MESSAGE') {
          this.emit('refused', err as DmaBufChannelError);
          continue;
        }
        return;
      }
      yield m;
    }
  }

  /** why the channel ended (ERR_DMA_HEAP_CHANNEL_CLOSED, with a reason); null while open */
  get endReason(): DmaBufChannelError | null {
    return this.#ended;
  }

  /**
   * Close the socket; waiting receives and sends reject with ERR_DMA_HEAP_CHANNEL_CLOSED. Idempotent.
   *
   * @throws Nothing: a second close() does nothing.
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * const [a, b] = DmaBufChannel.pair();
   * const next = b.receive().catch((err) => err.reason);
   * b.close();
   * console.log(await next); // 'closed': the receive rejected with ERR_DMA_HEAP_CHANNEL_CLOSED
   * a.close();
   * ```
   */
  close(): void {
    this.#end(closed('closed', 'the channel was closed'));
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * {
   *   using channel = DmaBufChannel.connect('/tmp/camera.sock');
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Watch the socket for what is waiting; a watch nothing waits for is dropped. */
  #watch(): void {
    if (this.#ended) return;
    try {
      this.#watcher.set((this.#wantsRead() ? READABLE : 0) | (this.#outgoing.length ? WRITABLE : 0));
    } catch (err) {
      this.#end(closed('error', `cannot watch the socket: ${(err as Error).message}`, err));
    }
  }

  #onPoll(err: Error | null): void {
    if (err) {
      this.#end(closed('error', `the socket failed: ${err.message}`, err));
      return;
    }
    // Hang-ups and errors show as readable and writable: the calls below meet them.
    this.#flush();
    this.#read();
    this.#watch();
  }

  #flush(): void {
    while (this.#outgoing.length && !this.#ended) {
      const out = this.#outgoing[0];
      let n: number;
      try {
        n = this.#sock.sendFds(this.#fd, out.sent ? out.frame.subarray(out.sent) : out.frame, out.sent ? [] : out.fds);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        if (PEER_GONE.has(code)) {
          this.#end(closed('peerClosed', `the peer is gone (${code})`, err));
        } else if (out.sent || code === 'EBADF') {
          // Half a frame on the stream would garble every later one; EBADF: no socket left.
          this.#end(closed('error', `sending failed: ${(err as Error).message}`, err));
        } else {
          // This message alone (EMSGSIZE, ETOOMANYREFS...): the next may go.
          this.#outgoing.shift();
          this.#release(out);
          out.reject(err as Error);
        }
        continue;
      }
      if (out.sent === 0) this.#release(out); // the fds went with the first bytes
      out.sent += n;
      if (out.sent >= out.frame.length) {
        this.#outgoing.shift();
        out.resolve();
      }
    }
  }

  #release(out: Outgoing): void {
    if (out.dups) closeAll(this.#sock, out.fds);
    out.fds = [];
    out.dups = false;
  }

  /** a receive() waits, or loans are out (their releases come in) and no message waits to be taken */
  #wantsRead(): boolean {
    return this.#waiters.length > 0 || (this.#loans.size > 0 && this.#parked === null);
  }

  /** a message, or the reason one was refused, to the first receive() waiting, else parked for the next */
  #hand(result: { message: ChannelMessage<unknown> } | { err: DmaBufChannelError }): void {
    const waiter = this.#waiters.shift();
    if (!waiter) this.#parked = result;
    else if ('message' in result) waiter.resolve(result.message);
    else waiter.reject(result.err);
  }

  /** A frame refused, its fds closed already: a release's refusal is an event (no receive() is its), a message's goes to receive(). */
  #refuse(err: DmaBufChannelError, header: Header | null): void {
    if (header?.flags === FLAG_RELEASE) process.nextTick(() => this.emit('refused', err));
    else this.#hand({ err });
  }

  #read(): void {
    while (!this.#ended && this.#wantsRead()) {
      const want = this.#stream ? this.#stream.want() : HEADER + this.#maxPayload;
      let r: ReceivedMessage;
      try {
        r = this.#sock.recvFds(this.#fd, want, this.#maxFds);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        this.#end(closed(code === 'ECONNRESET' ? 'peerClosed' : 'error', `receiving failed: ${(err as Error).message}`, err));
        return;
      }
      if (this.#stream) this.#onStreamBytes(this.#stream, r);
      else this.#onPacket(r);
    }
  }

  #onPacket(r: ReceivedMessage): void {
    // We never send empty packets: an empty read is the peer's end.
    if (r.eof || (r.payload.length === 0 && r.fds.length === 0 && !r.truncated && !r.controlTruncated)) {
      this.#end(closed('peerClosed', 'the peer closed the channel'));
      return;
    }
    const header = decodeHeader(r.payload, this.#maxPayload);
    const known = typeof header === 'string' ? null : header; // says whether a refusal is a release's
    const problem = this.#controlProblem(r) ?? (r.truncated ? bad('truncated', `the message is longer than maxPayload (${this.#maxPayload})`) : null);
    if (problem) {
      closeAll(this.#sock, r.fds);
      this.#refuse(problem, known);
      return;
    }
    if (typeof header === 'string' || r.payload.length !== HEADER + header.length) {
      closeAll(this.#sock, r.fds);
      this.#refuse(bad('malformed', typeof header === 'string' ? header : `the frame says ${header.length} bytes of JSON, the packet has ${r.payload.length - HEADER}`), known);
      return;
    }
    this.#deliver(header, r.payload.subarray(HEADER), r.fds);
  }

  #controlProblem(r: ReceivedMessage): DmaBufChannelError | null {
    if (r.controlTruncated) {
      return bad('controlTruncated', `the control data was truncated: more fds than maxFds (${this.#maxFds}), or than this process could open (EMFILE)`);
    }
    if (r.foreignControl) return bad('foreignControl', 'a control message other than SCM_RIGHTS arrived');
    return null;
  }

  #onStreamBytes(stream: StreamReassembler<Header>, r: ReceivedMessage): void {
    if (r.eof || (r.payload.length === 0 && r.fds.length === 0)) {
      this.#end(stream.atStart ? closed('peerClosed', 'the peer closed the channel') : closed('midMessage', 'the peer closed the channel in the middle of a message'));
      return;
    }
    const fed = stream.feed(r.payload, r.fds, this.#controlProblem(r));
    switch (fed.kind) {
      case 'more':
        return;
      case 'unfollowable': {
        // No length to trust: the stream can't be followed past this point.
        const err = bad('malformed', fed.reason);
        this.#hand({ err });
        this.#end(closed('error', `the channel was closed after a malformed frame: ${fed.reason}`, err));
        return;
      }
      case 'refused':
        this.#refuse(fed.err, fed.header);
        return;
      case 'frame':
        this.#deliver(fed.header, fed.body, fed.fds);
    }
  }

  /**
   * Check a whole frame and adopt its fds: a receive() gets the message or the reason it was
   * refused. A release is this end's business (#onRelease). A lent message refused once its id
   * is known is released at once: its fds are closed, the lender may have its buffers back.
   */
  #deliver(header: Header, json: Buffer, fds: number[]): void {
    if (header.flags === FLAG_RELEASE) return this.#onRelease(header, json, fds);
    let lendId: number | undefined;
    const refuse = (err: DmaBufChannelError) => {
      closeAll(this.#sock, fds);
      if (lendId !== undefined) this.#queueRelease(lendId);
      this.#hand({ err });
    };
    // The body first, for a lent message's id: whatever is wrong with the frame, a lent one whose
    // id can be read is given back (else the lender's buffer stays out until the channel ends).
    let body: { buffers?: unknown; payload?: unknown; lend?: unknown } | null = null;
    let notJson: Error | null = null;
    try {
      body = JSON.parse(json.toString('utf8'));
    } catch (err) {
      notJson = err as Error;
    }
    let reused: number | undefined;
    if (header.flags === FLAG_LENT && body && typeof body === 'object' && isLendId(body.lend)) {
      if (this.#borrowed.has(body.lend)) reused = body.lend; // out with us: not ours to release again
      else lendId = body.lend;
    }
    if (fds.length !== header.fdCount) {
      return refuse(bad('fdCount', `the frame says ${header.fdCount} fds, ${fds.length} came with it`));
    }
    if (header.fdCount > this.#maxFds) return refuse(bad('fdCount', `the frame has ${header.fdCount} fds, more than maxFds (${this.#maxFds})`));
    if (notJson) return refuse(bad('malformed', `the payload is not JSON: ${notJson.message}`));
    if (!body || typeof body !== 'object') return refuse(bad('malformed', 'the payload does not describe one buffer per fd'));
    if (reused !== undefined) return refuse(bad('loanReused', `lend id ${reused} is still out with this end: its message was not released`));
    if (header.flags === FLAG_LENT && lendId === undefined) {
      return refuse(bad('malformed', `a lent message's "lend" is not an integer in [1, ${MAX_LEND_ID}]`));
    }
    if (!Array.isArray(body.buffers) || body.buffers.length !== fds.length) {
      return refuse(bad('malformed', 'the payload does not describe one buffer per fd'));
    }
    const metas = body.buffers as ItemMeta[];
    const why = metas.map(badMeta).find((w) => w !== undefined);
    if (why) return refuse(bad('malformed', why));
    let items: ShareItem[];
    try {
      items = adoptAll(this.#sock, fds, metas, (i) => `buffer ${i}`);
    } catch (err) {
      // adoptAll closed everything
      if (lendId !== undefined) this.#queueRelease(lendId);
      this.#hand({ err: err as DmaBufChannelError });
      return;
    }
    if (lendId !== undefined) this.#borrowed.add(lendId);
    this.#hand({ message: new Received(items, body.payload, lendId === undefined ? null : this.#giveBackFor(lendId)) });
  }

  /** A release frame: its loans come back; a bad one, or ids not out, are refused as an event (its fds closed). */
  #onRelease(header: Header, json: Buffer, fds: number[]): void {
    const refuse = (err: DmaBufChannelError) => {
      closeAll(this.#sock, fds);
      this.#refuse(err, header);
    };
    if (fds.length || header.fdCount) return refuse(bad('badRelease', `a release carries no fds, this one has ${Math.max(fds.length, header.fdCount)}`));
    let body: unknown;
    try {
      body = JSON.parse(json.toString('utf8'));
    } catch (err) {
      return refuse(bad('badRelease', `the release is not JSON: ${(err as Error).message}`));
    }
    const ids = releaseIds(body);
    if (typeof ids === 'string') return refuse(bad('badRelease', ids));
    // each at most once: an id not out (never lent, or back already) returns nothing
    const unknown = ids.filter((id) => !this.#loans.giveBack(id, PEER));
    if (unknown.length) {
      const shown = unknown.slice(0, 8).join(', ') + (unknown.length > 8 ? `, ... (${unknown.length})` : '');
      refuse(bad('unknownLoan', `a release names ids this end did not lend or got back already: ${shown}`));
    }
  }

  /** The channel is over: every waiter learns why, every fd it holds is closed. */
  #end(err: DmaBufChannelError): void {
    if (this.#ended) return;
    this.#ended = err;
    this.#watcher.stop();
    closeAll(this.#sock, [this.#fd]);
    this.#stream?.drop();
    this.#fd = -1;
    for (const out of this.#outgoing.splice(0)) {
      this.#release(out);
      out.reject(err);
    }
    for (const w of this.#waiters.splice(0)) w.reject(err);
    // nothing more comes back or goes back: every loan out ends 'closed' (leases to their pools),
    // a message nobody took is dropped as unread data is, borrowed ones release with nothing to send
    this.#pendingRelease = null;
    this.#borrowed.clear();
    const parked = this.#parked;
    this.#parked = null;
    if (parked && 'message' in parked) parked.message.release();
    try {
      this.#loans.clear();
    } catch {
      // the loans' own callbacks settle promises and release leases: nothing throws there
    }
    process.nextTick(() => this.emit('close', err));
  }
}

