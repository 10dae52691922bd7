/**
 * Node into GStreamer: a server that `unixfdsrc` (and any client of the protocol) connects to,
 * playing GStreamer's `unixfdsink`. Every client gets the caps first, then each buffer sent,
 * lent (Loans, loan.ts): a buffer is back, and a pool lease goes back to its pool, when every
 * client that got it released it or went away. As unixfdsink, buffers sent while no client is
 * connected go to no one and are back at once.
 */
import { EventEmitter } from 'node:events';
import { invalidArgType, invalidArgValue, outOfRange, validateArray, validateInteger, validateOptions } from '../../args';
import { DmaBuf } from '../../dmabuf';
import { DmaBufStateError } from '../../errors';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from '../../internal-token';
import { PooledBuffer } from '../../pool';
import { SOCK_STREAM } from '../../uapi';
import { sendableFds } from '../buffers';
import { bad, type DmaBufChannelError } from '../errors';
import { isRealTier, SHAREABLE } from '../frame';
import { LISTEN_OPTIONS, Listener, type ListenOptions, type PeerCredentials, type RefusedConnectionReason } from '../listener';
import { Loans } from '../loan';
import { closeAll, sockets, type Sockets } from '../socket';
import { UnixFdConnection, type Command } from './connection';
import { CAPS, decodeRelease, encodeCaps, encodeNewBuffer, EOS, NEW_BUFFER, RELEASE_BUFFER, type MemoryRange, type UnixFdMemoryType } from './protocol';

const SINK_OPTIONS = ['caps', ...LISTEN_OPTIONS] as const;
/** a client sends releases (8 bytes) and nothing else we know: a long command is no client of ours */
const MAX_CLIENT_PAYLOAD = 4096;
const U64_MAX = 0xffffffffffffffffn;

/** Options of {@link UnixFdSink.listen}: the caps, and who may connect. */
export interface UnixFdSinkOptions extends ListenOptions {
  /** the stream's caps, as gst_caps_from_string reads them, e.g. 'video/x-raw,format=RGBA,width=64,height=48,framerate=30/1' */
  caps: string;
}

/** One memory of a buffer to send: a DmaBuf or a pool lease, whole or a range of it. */
export type UnixFdMemoryInit =
  | DmaBuf
  | PooledBuffer
  | {
      /** the buffer (a pool lease goes back to its pool when the buffer is back) */
      buffer: DmaBuf | PooledBuffer;
      /** where the memory starts in it (default 0) */
      offset?: number;
      /** its length (default: to the buffer's end) */
      size?: number;
    };

/** A buffer to send: its memories (all dma-bufs, or all memfds) and its timing. */
export interface UnixFdBufferInit {
  /** 1 to 255 memories (planes), all of one kind: dma-bufs (dma-heap, udmabuf, imported) or memfds */
  memories: UnixFdMemoryInit[];
  /** presentation time in ns of CLOCK_MONOTONIC (process.hrtime.bigint()), as unixfdsrc expects it: it subtracts its pipeline's base time; omitted: none */
  pts?: bigint | null;
  /** decoding time, as pts; omitted: none */
  dts?: bigint | null;
  /** duration in ns; omitted: none */
  duration?: bigint | null;
  /** GST_BUFFER_OFFSET (for video, the frame number); omitted: none */
  offset?: bigint | null;
  /** GST_BUFFER_OFFSET_END; omitted: none */
  offsetEnd?: bigint | null;
  /** GstBufferFlags (default 0) */
  flags?: number;
}
const BUFFER_FIELDS = ['memories', 'pts', 'dts', 'duration', 'offset', 'offsetEnd', 'flags'] as const;

/** The events of a UnixFdSink and their arguments. */
export interface UnixFdSinkEvents {
  /** a client connected (and was sent the caps) */
  connection: [peer: PeerCredentials];
  /** a client was closed as soon as it connected: allow() said no, or maxConnections */
  refusedConnection: [peer: PeerCredentials, reason: RefusedConnectionReason, error?: unknown];
  /** a client's command was refused (a release of an id it does not hold...); the client goes on */
  refused: [err: DmaBufChannelError, peer: PeerCredentials];
  /** a client went away; every buffer it held counts as released */
  disconnect: [peer: PeerCredentials, reason: DmaBufChannelError];
  /** accept(2) or the socket's poll failed; only emitted when someone listens */
  error: [err: Error];
  /** close() was called */
  close: [];
}

interface Client {
  conn: UnixFdConnection;
  peer: PeerCredentials;
}

// Typed events without a generic EventEmitter in the user's @types/node.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface UnixFdSink {
  /**
   * Listen for `event` (the events and their arguments: {@link UnixFdSinkEvents}).
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  on<K extends keyof UnixFdSinkEvents>(event: K, listener: (...args: UnixFdSinkEvents[K]) => void): this;
  /**
   * Listen for the next `event` only.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  once<K extends keyof UnixFdSinkEvents>(event: K, listener: (...args: UnixFdSinkEvents[K]) => void): this;
  /**
   * Stop a listener.
   *
   * @param event the event's name
   * @param listener the listener to remove
   */
  off<K extends keyof UnixFdSinkEvents>(event: K, listener: (...args: UnixFdSinkEvents[K]) => void): this;
}

/**
 * A socket GStreamer's `unixfdsrc` connects to (socket-path, socket-type=path; or abstract with
 * a leading NUL): `send()` lends a buffer to every connected client and resolves when all of
 * them gave it back. Plays GStreamer's `unixfdsink`. Events: UnixFdSinkEvents; 'error' only to
 * a listener: nothing a client does ends the process. Keeps the event loop alive until close().
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class UnixFdSink extends EventEmitter {
  readonly #sock: Sockets;
  readonly #listener: Listener;
  readonly #clients = new Set<Client>();
  readonly #loans = new Loans<bigint, Client>();
  #caps: string;
  #nextId = 1n;

  /**
   * Not for users: UnixFdSink.listen() makes one (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, sock: Sockets, path: string, caps: string, options: ListenOptions) {
    checkConstructorToken(token, 'UnixFdSink.listen()');
    super();
    this.#sock = sock;
    this.#caps = caps;
    this.#listener = new Listener(sock, path, SOCK_STREAM, options, (fd, peer, done) => this.#accept(fd, peer, done), {
      refused: (peer, reason, error) => this.emit('refusedConnection', peer, reason, error),
      error: (err) => {
        if (this.listenerCount('error') > 0) this.emit('error', err);
      },
    });
  }

  /**
   * Listen at `path` for `unixfdsrc` clients.
   *
   * @param path the socket-path unixfdsrc is given (a leading NUL: the abstract namespace, socket-type=abstract)
   * @param options `caps` (required), and who may connect: `mode`, `group`, `allow`, `maxConnections`, `backlog`
   * @returns the sink
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad path or options (caps
   * missing, empty or with a NUL); RangeError `ERR_OUT_OF_RANGE`.
   * @throws {@link DmaHeapError} bind's or listen's errno: `EADDRINUSE` (the path exists), `EACCES`...
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon (passing fds needs it).
   * @example
   * ```ts
   * import { openHeap, UnixFdSink } from 'dma-heap';
   * // gst-launch-1.0 unixfdsrc socket-path=/tmp/node.sock ! videoconvert ! autovideosink
   * using heap = openHeap('system');
   * using pool = heap.createPool({ size: 64 * 48 * 4, count: 4 });
   * using sink = UnixFdSink.listen('/tmp/node.sock', { caps: 'video/x-raw,format=RGBA,width=64,height=48,framerate=30/1' });
   * const lease = await pool.acquireAsync();
   * lease.bytes().fill(0x80);
   * await sink.send({ memories: [lease], pts: process.hrtime.bigint() }); // back in the pool now
   * ```
   */
  static listen(path: string, options: UnixFdSinkOptions): UnixFdSink {
    const sock = sockets();
    if (options === null || typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
    const checked = validateOptions(options, SINK_OPTIONS) as UnixFdSinkOptions;
    const caps = validateCaps(checked.caps);
    const { caps: _caps, ...listen } = checked;
    return new UnixFdSink(INTERNAL_CONSTRUCTOR, sock, path, caps, listen);
  }

  /** the socket's path */
  get path(): string {
    return this.#listener.path;
  }

  /** the caps every client gets first */
  get caps(): string {
    return this.#caps;
  }

  /** how many clients are connected */
  get clients(): number {
    return this.#clients.size;
  }

  /** how many buffers are out (sent, not yet back from every client) */
  get pending(): number {
    return this.#loans.size;
  }

  /** whether close() ran */
  get closed(): boolean {
    return this.#listener.closed;
  }

  /**
   * New caps for the buffers sent after them: sent to every client now, and first to each new one.
   *
   * @param caps the caps string
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for caps that are no
   * non-empty string without NUL.
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_SINK_CLOSED` after close().
   * @example
   * ```ts
   * import { UnixFdSink } from 'dma-heap';
   * using sink = UnixFdSink.listen('/tmp/node.sock', { caps: 'video/x-raw,format=RGBA,width=64,height=48' });
   * sink.setCaps('video/x-raw,format=RGBA,width=128,height=96');
   * ```
   */
  setCaps(caps: string): void {
    this.#live();
    this.#caps = validateCaps(caps);
    for (const c of this.#clients) this.#sendTo(c, CAPS, encodeCaps(this.#caps));
  }

  /**
   * Lend a buffer to every connected client. Resolves when each of them released it or went
   * away (at once when none is connected); then a pool lease among its memories goes back to
   * its pool. Until then the memories are the clients': do not write them.
   *
   * @param buffer its `memories` (DmaBufs or pool leases, all dma-bufs or all memfds) and timing
   * @returns a promise that resolves when the buffer is back from every client
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad buffer (mixed
   * memory kinds, a range past a memory's end...); RangeError `ERR_OUT_OF_RANGE` (no or more than
   * 255 memories, a time that is no u64).
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` / `ERR_DMA_HEAP_POOL_RELEASED` for a
   * memory already gone, `ERR_DMA_HEAP_NOT_SHAREABLE` for one in JS memory, `ERR_DMA_HEAP_SINK_CLOSED`
   * after close(). Throws synchronously: nothing was sent then.
   * @example
   * ```ts
   * import { allocShareable, UnixFdSink } from 'dma-heap';
   * using sink = UnixFdSink.listen('/tmp/node.sock', { caps: 'video/x-raw,format=GRAY8,width=64,height=64' });
   * using buf = allocShareable(4096);
   * await sink.send({ memories: [buf], duration: 33_333_333n });
   * ```
   */
  send(buffer: UnixFdBufferInit): Promise<void> {
    this.#live();
    const b = validateOptions(buffer as unknown as Record<string, unknown>, BUFFER_FIELDS, 'buffer') as unknown as UnixFdBufferInit;
    validateArray(b.memories, 'buffer.memories', 'an array of DmaBuf, PooledBuffer or { buffer, offset, size }');
    if (b.memories.length < 1 || b.memories.length > 255) throw outOfRange('buffer.memories.length', '>= 1 && <= 255', b.memories.length);
    const leases: PooledBuffer[] = [];
    const bufs: DmaBuf[] = [];
    const ranges: MemoryRange[] = [];
    let type: UnixFdMemoryType | null = null;
    b.memories.forEach((m, i) => {
      const what = `buffer.memories[${i}]`;
      const plain = m instanceof DmaBuf || m instanceof PooledBuffer;
      // a { buffer, offset, size } is read once, into a checked copy: what is checked is what is used
      const r: { buffer?: unknown; offset?: unknown; size?: unknown } = plain
        ? {}
        : m && typeof m === 'object'
          ? validateOptions(m as Record<string, unknown>, ['buffer', 'offset', 'size'], what)
          : { buffer: m };
      const item = plain ? m : r.buffer;
      let buf: DmaBuf;
      if (item instanceof PooledBuffer) {
        buf = item.buffer; // throws ERR_DMA_HEAP_POOL_RELEASED for a lease already back
        leases.push(item);
      } else if (item instanceof DmaBuf) buf = item;
      else throw invalidArgType(what, 'a DmaBuf, a PooledBuffer or { buffer, offset, size }', m);
      if (buf.closed) throw new DmaBufStateError('ERR_DMA_BUF_CLOSED', `${what} is closed`);
      if (!SHAREABLE.includes(buf.tier)) {
        throw new DmaBufStateError('ERR_DMA_HEAP_NOT_SHAREABLE', `${what} lives in JS memory (tier '${buf.tier}'): GStreamer can only map an fd`);
      }
      const kind: UnixFdMemoryType = isRealTier(buf.tier) ? 'dmabuf' : 'shm';
      if (type !== null && kind !== type) throw invalidArgValue('buffer.memories', `[${i}: ${buf.tier}]`, 'must be all dma-bufs or all memfds (GStreamer sends one memory type per buffer)');
      type = kind;
      const offset = r.offset === undefined ? 0 : validateInteger(r.offset, `${what}.offset`, 0, buf.size - 1);
      const size = r.size === undefined ? buf.size - offset : validateInteger(r.size, `${what}.size`, 1, buf.size - offset);
      bufs.push(buf);
      ranges.push({ offset, size });
    });
    const fields = {
      pts: time(b.pts, 'buffer.pts'),
      dts: time(b.dts, 'buffer.dts'),
      duration: time(b.duration, 'buffer.duration'),
      offset: time(b.offset, 'buffer.offset'),
      offsetEnd: time(b.offsetEnd, 'buffer.offsetEnd'),
      flags: b.flags === undefined ? 0 : validateInteger(b.flags, 'buffer.flags', 0, 0xffffffff),
    };
    const id = this.#nextId++;
    const payload = encodeNewBuffer({ id, ...fields, memoryType: type!, memories: ranges, metas: [] });
    const fds = sendableFds(this.#sock, bufs);
    return new Promise<void>((resolve) => {
      const holders = [...this.#clients];
      this.#loans.lend(id, holders, () => {
        for (const lease of leases) if (!lease.released) lease.release();
        resolve();
      });
      try {
        for (const c of holders) this.#sendTo(c, NEW_BUFFER, payload, fds.fds);
      } finally {
        if (fds.owned) closeAll(this.#sock, fds.fds);
      }
    });
  }

  /**
   * End of stream: every client's unixfdsrc ends its pipeline (EOS). The sink stays open.
   *
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_SINK_CLOSED` after close().
   * @example
   * ```ts
   * import { UnixFdSink } from 'dma-heap';
   * using sink = UnixFdSink.listen('/tmp/node.sock', { caps: 'video/x-raw,format=GRAY8,width=64,height=64' });
   * sink.eos();
   * ```
   */
  eos(): void {
    this.#live();
    for (const c of this.#clients) this.#sendTo(c, EOS, Buffer.alloc(0));
  }

  /**
   * Stop listening, remove the socket file and end every client: every buffer out is back.
   * Idempotent.
   *
   * @throws Nothing.
   * @example
   * ```ts
   * import { UnixFdSink } from 'dma-heap';
   * const sink = UnixFdSink.listen('/tmp/node.sock', { caps: 'video/x-raw' });
   * sink.close();
   * ```
   */
  close(): void {
    if (this.#listener.closed) return;
    this.#listener.close();
    for (const c of [...this.#clients]) c.conn.close();
    this.#loans.clear();
    process.nextTick(() => this.emit('close'));
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { UnixFdSink } from 'dma-heap';
   * {
   *   using sink = UnixFdSink.listen('/tmp/node.sock', { caps: 'video/x-raw' });
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  #live(): void {
    if (this.#listener.closed) throw new DmaBufStateError('ERR_DMA_HEAP_SINK_CLOSED', 'the unixfd sink is closed');
  }

  #accept(fd: number, peer: PeerCredentials, done: () => void): void {
    const client: Client = {
      peer,
      conn: new UnixFdConnection(this.#sock, fd, MAX_CLIENT_PAYLOAD, {
        command: (c) => this.#onCommand(client, c),
        refused: (err) => this.emit('refused', err, peer),
        end: (reason) => {
          this.#clients.delete(client);
          this.#loans.dropHolder(client);
          done();
          this.emit('disconnect', peer, reason);
        },
      }),
    };
    this.#clients.add(client);
    this.#sendTo(client, CAPS, encodeCaps(this.#caps));
    client.conn.reading = true;
    if (!client.conn.endReason) this.emit('connection', peer);
  }

  /** a client that can't be written to is gone: its end gives back what it held */
  #sendTo(c: Client, type: number, payload: Buffer, fds: readonly number[] = []): void {
    try {
      c.conn.send(type, payload, fds);
    } catch (err) {
      c.conn.close(err as DmaBufChannelError);
    }
  }

  #onCommand(client: Client, c: Command): void {
    closeAll(this.#sock, c.fds); // a client has no fds to give us
    if (c.type !== RELEASE_BUFFER) {
      if (c.type === NEW_BUFFER || c.type === CAPS || c.type === EOS) {
        this.emit('refused', bad('malformed', `a client sent command ${c.type}, which only a sink sends`), client.peer);
      }
      return; // GStreamer ignores commands it does not know; so do we
    }
    const id = decodeRelease(c.payload);
    if (typeof id === 'string') {
      this.emit('refused', bad('badRelease', id), client.peer);
      return;
    }
    if (!this.#loans.giveBack(id, client)) {
      this.emit('refused', bad('unknownLoan', `release of buffer ${id}, which this client does not hold (never sent, or released already)`), client.peer);
    }
  }
}

function validateCaps(caps: unknown): string {
  if (typeof caps !== 'string') throw invalidArgType('options.caps', 'of type string', caps);
  if (caps === '' || caps.includes('\0')) throw invalidArgValue('options.caps', caps, 'must be a non-empty caps string without NUL');
  return caps;
}

function time(v: unknown, what: string): bigint | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'bigint') throw invalidArgType(what, 'of type bigint', v);
  // U64_MAX is GStreamer's NONE: pass null for that
  if (v < 0n || v >= U64_MAX) throw outOfRange(what, `>= 0n && < ${U64_MAX}n (null: none)`, v);
  return v;
}
