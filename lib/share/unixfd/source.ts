/**
 * GStreamer into Node: a client of a `unixfdsink`, playing GStreamer's `unixfdsrc`. Frames
 * arrive as UnixFdFrames (one DmaBuf per memory) and go back with RELEASE_BUFFER exactly
 * once (Borrowed, loan.ts). The socket is read only while a receive waits: a slow consumer
 * leaves commands in the socket, and unixfdsink's streaming thread blocks when it is full.
 */
import { EventEmitter } from 'node:events';
import { invalidArgType, validateInteger, validateOptions } from '../../args';
import { adoptDmaBuf, type DmaBuf } from '../../dmabuf';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from '../../internal-token';
import { bad, type DmaBufChannelError } from '../errors';
import { Borrowed } from '../loan';
import { validatePath } from '../listener';
import { closeAll, peerOf, sockets, type PeerCredentials, type Sockets } from '../socket';
import { parseCaps, type GstCaps } from './caps';
import { UnixFdConnection, type Command } from './connection';
import { CAPS, decodeCaps, decodeNewBuffer, decodeVideoMeta, encodeRelease, EOS, NEW_BUFFER, RELEASE_BUFFER, VIDEO_META, type UnixFdMemoryType, type NewBuffer, type GstVideoMeta } from './protocol';
import { SOCK_STREAM } from '../../uapi';

const SOURCE_OPTIONS = ['maxPayload'] as const;
const DEFAULT_MAX_PAYLOAD = 64 * 1024;
const MAX_PAYLOAD = 16 * 1024 * 1024;

/** Options of {@link UnixFdSource.connect}. */
export interface UnixFdSourceOptions {
  /** the longest command accepted, in bytes: a caps string, or a buffer's description and metas
   *  (default 64 KiB, at most 16 MiB); a longer one ends the connection */
  maxPayload?: number;
}

/** One memory of a frame: `size` bytes at `offset` in `buffer`. */
export interface UnixFdMemory {
  /** the memory's fd, adopted: tier 'imported' (or 'dma-heap', 'udmabuf') for a dma-buf; 'memfd'
   *  for GStreamer's shared memory, which is read-only (sealed by its maker): read it with read() */
  readonly buffer: DmaBuf;
  /** where the memory starts in `buffer` */
  readonly offset: number;
  /** the memory's length */
  readonly size: number;
}

/**
 * A buffer GStreamer lent: its memories, timing and layout. Give it back with release() (or
 * `using`): that closes its DmaBufs and tells the sink, once. A frame the program forgets, with
 * all its buffers, is given back by the garbage collector; a DmaBuf kept from it keeps it lent.
 */
export class UnixFdFrame {
  /** the sink's id for this buffer */
  readonly id: bigint;
  /** presentation time, in ns of CLOCK_MONOTONIC (unixfdsink converts running time to it; process.hrtime.bigint() reads the same clock); null: none */
  readonly pts: bigint | null;
  /** decoding time, as pts; null: none */
  readonly dts: bigint | null;
  /** duration in ns; null: none */
  readonly duration: bigint | null;
  /** GST_BUFFER_OFFSET (for video, usually the frame number); null: none */
  readonly offset: bigint | null;
  /** GST_BUFFER_OFFSET_END; null: none */
  readonly offsetEnd: bigint | null;
  /** GstBufferFlags */
  readonly flags: number;
  /** 'dmabuf' or 'shm' (GStreamer's shared memory, memfds) */
  readonly memoryType: UnixFdMemoryType;
  /** the memories, in order (planes, when the producer put each in its own) */
  readonly memories: readonly UnixFdMemory[];
  /** the caps in effect when it arrived */
  readonly caps: GstCaps | null;
  /** the GstVideoMeta it carried (strides and plane offsets across its memories), or null */
  readonly video: GstVideoMeta | null;
  readonly #loan: Borrowed;

  /**
   * Not for users: a UnixFdSource makes them (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, b: NewBuffer, memories: UnixFdMemory[], caps: GstCaps | null, video: GstVideoMeta | null, giveBack: () => void) {
    checkConstructorToken(token, 'UnixFdSource.receive()');
    this.id = b.id;
    this.pts = b.pts;
    this.dts = b.dts;
    this.duration = b.duration;
    this.offset = b.offset;
    this.offsetEnd = b.offsetEnd;
    this.flags = b.flags;
    this.memoryType = b.memoryType;
    this.memories = Object.freeze(memories.map((m) => Object.freeze(m)));
    this.caps = caps;
    this.video = video;
    this.#loan = new Borrowed(this, memories.map((m) => m.buffer), giveBack);
  }

  /** whether it was given back */
  get released(): boolean {
    return this.#loan.released;
  }

  /**
   * Give the buffer back to the sink: its DmaBufs are closed (every view of them detached) and
   * RELEASE_BUFFER is sent, once. Idempotent.
   *
   * @throws Nothing: a second release does nothing; a connection already gone is no error.
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * using source = UnixFdSource.connect('/tmp/gst.sock');
   * const frame = await source.receive();
   * if (frame) {
   *   console.log(frame.pts, frame.memories[0].buffer.read(0, 4));
   *   frame.release();
   * }
   * ```
   */
  release(): void {
    this.#loan.release();
  }

  /**
   * release(), for `using`.
   *
   * @throws Nothing, as release().
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * using source = UnixFdSource.connect('/tmp/gst.sock');
   * for await (const frame of source) {
   *   using f = frame; // given back at the end of each turn
   *   console.log(f.caps?.width, f.memories.length);
   * }
   * ```
   */
  [Symbol.dispose](): void {
    this.#loan.release();
  }
}

/** The events of a UnixFdSource and their arguments. */
export interface UnixFdSourceEvents {
  /** new caps from the sink: they apply to the frames after them */
  caps: [caps: GstCaps];
  /** a command was refused (its fds closed; a refused buffer is given back to the sink) */
  refused: [err: DmaBufChannelError];
  /** the connection ended: ERR_DMA_HEAP_CHANNEL_CLOSED, its `reason` says why */
  close: [reason: DmaBufChannelError];
}

interface Waiter {
  resolve(f: UnixFdFrame | null): void;
  reject(err: Error): void;
}

// Typed events without a generic EventEmitter in the user's @types/node.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface UnixFdSource {
  /**
   * Listen for `event` (the events and their arguments: {@link UnixFdSourceEvents}).
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  on<K extends keyof UnixFdSourceEvents>(event: K, listener: (...args: UnixFdSourceEvents[K]) => void): this;
  /**
   * Listen for the next `event` only.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  once<K extends keyof UnixFdSourceEvents>(event: K, listener: (...args: UnixFdSourceEvents[K]) => void): this;
  /**
   * Stop a listener.
   *
   * @param event the event's name
   * @param listener the listener to remove
   */
  off<K extends keyof UnixFdSourceEvents>(event: K, listener: (...args: UnixFdSourceEvents[K]) => void): this;
}

/**
 * A connection to a GStreamer `unixfdsink` (GStreamer 1.24+): `receive()` or `for await` gives
 * its buffers as UnixFdFrames, `caps` the stream's caps. Plays GStreamer's `unixfdsrc`. Emits
 * 'caps', 'refused' and 'close' (events: UnixFdSourceEvents); never 'error'.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class UnixFdSource extends EventEmitter {
  /**
   * Who listens at the other end: the sink's `{ pid, uid, gid }` (SO_PEERCRED, as the sink's
   * process had them when it listened), read once at connect: check it before trusting what arrives.
   */
  readonly peer: Readonly<PeerCredentials>;
  readonly #sock: Sockets;
  readonly #conn: UnixFdConnection;
  readonly #waiters: Waiter[] = [];
  #caps: GstCaps | null = null;
  #eos = false;

  /**
   * Not for users: UnixFdSource.connect() makes one (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, sock: Sockets, fd: number, maxPayload: number) {
    checkConstructorToken(token, 'UnixFdSource.connect()');
    super();
    this.peer = peerOf(sock, fd); // the fd was handed over: closed if this throws
    this.#sock = sock;
    this.#conn = new UnixFdConnection(sock, fd, maxPayload, {
      command: (c) => this.#onCommand(c),
      refused: (err) => this.#refuse(err),
      end: (reason) => this.#onEnd(reason),
    });
  }

  /**
   * Connect to a `unixfdsink`'s socket (its `socket-path`).
   *
   * @param path the sink's socket-path (a leading NUL: Linux's abstract namespace, the sink's socket-type=abstract)
   * @param options `maxPayload`
   * @returns the connected source; the sink sends its caps first
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad path or options;
   * RangeError `ERR_OUT_OF_RANGE` for maxPayload out of range.
   * @throws {@link DmaHeapError} connect's errno: `ENOENT` (no socket there), `ECONNREFUSED` (no sink listens)...
   * @throws Error `ERR_DMA_HEAP_NO_ADDON` without the native addon (passing fds needs it).
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * // gst-launch-1.0 videotestsrc ! video/x-raw,format=RGBA,width=64,height=48 ! unixfdsink socket-path=/tmp/gst.sock
   * using source = UnixFdSource.connect('/tmp/gst.sock');
   * for await (const frame of source) {
   *   console.log(frame.caps?.format, frame.pts, frame.memories[0].size);
   *   frame.release();
   * }
   * ```
   */
  static connect(path: string, options?: UnixFdSourceOptions): UnixFdSource {
    const sock = sockets();
    options = validateOptions(options, SOURCE_OPTIONS);
    if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
    const maxPayload = options.maxPayload === undefined ? DEFAULT_MAX_PAYLOAD : validateInteger(options.maxPayload, 'options.maxPayload', 1, MAX_PAYLOAD);
    validatePath(path);
    const fd = sock.socket(SOCK_STREAM);
    try {
      sock.connect(fd, path);
    } catch (err) {
      closeAll(sock, [fd]);
      throw err;
    }
    return new UnixFdSource(INTERNAL_CONSTRUCTOR, sock, fd, maxPayload);
  }

  /** the stream's caps (the last the sink sent), or null before any */
  get caps(): GstCaps | null {
    return this.#caps;
  }

  /** whether the sink sent EOS (the stream ended; the connection may stay open) */
  get eos(): boolean {
    return this.#eos;
  }

  /** whether the connection ended: `endReason` says why */
  get closed(): boolean {
    return this.#conn.endReason !== null;
  }

  /** why the connection ended (ERR_DMA_HEAP_CHANNEL_CLOSED, with a reason); null while open */
  get endReason(): DmaBufChannelError | null {
    return this.#conn.endReason;
  }

  /**
   * The next buffer, or null at EOS. GstCaps that come first are taken in (`caps`, the 'caps'
   * event) on the way. Only while a receive waits is the socket read.
   *
   * @returns the frame (yours to release), or null when the sink sent EOS
   * @throws Rejects with {@link DmaBufChannelError} `ERR_DMA_HEAP_BAD_MESSAGE` (a buffer refused:
   * its fds closed, given back to the sink; the connection goes on) or `ERR_DMA_HEAP_CHANNEL_CLOSED`
   * (the connection ended: `reason`).
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * using source = UnixFdSource.connect('/tmp/gst.sock');
   * using frame = await source.receive();
   * console.log(frame?.memories.map((m) => m.buffer.tier));
   * ```
   */
  receive(): Promise<UnixFdFrame | null> {
    const ended = this.#conn.endReason;
    if (ended) return Promise.reject(ended);
    return new Promise<UnixFdFrame | null>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#conn.reading = true;
    });
  }

  /**
   * Frames until EOS or the connection's end. Nothing the sink sends can make the loop throw:
   * a refused buffer is skipped (and emitted as 'refused').
   *
   * @returns an async iterator of frames
   * @throws Nothing: a refused buffer is skipped, an end ends the loop (`endReason` says why).
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * using source = UnixFdSource.connect('/tmp/gst.sock');
   * let n = 0;
   * for await (const frame of source) {
   *   n++;
   *   frame.release();
   * }
   * console.log(n, source.eos ? 'EOS' : source.endReason?.reason);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<UnixFdFrame> {
    for (;;) {
      let f: UnixFdFrame | null;
      try {
        f = await this.receive();
      } catch (err) {
        if ((err as DmaBufChannelError).code === 'ERR_DMA_HEAP_BAD_MESSAGE') {
          this.emit('refused', err as DmaBufChannelError);
          continue;
        }
        return;
      }
      if (f === null) return;
      yield f;
    }
  }

  /**
   * Close the connection. Frames not yet released stay usable; the sink takes its buffers
   * back when a client goes. Waiting receives reject with ERR_DMA_HEAP_CHANNEL_CLOSED. Idempotent.
   *
   * @throws Nothing.
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * const source = UnixFdSource.connect('/tmp/gst.sock');
   * source.close();
   * ```
   */
  close(): void {
    this.#conn.close();
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { UnixFdSource } from 'dma-heap';
   * {
   *   using source = UnixFdSource.connect('/tmp/gst.sock');
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  #onCommand(c: Command): void {
    switch (c.type) {
      case NEW_BUFFER:
        this.#onNewBuffer(c);
        break;
      case CAPS: {
        closeAll(this.#sock, c.fds);
        const caps = decodeCaps(c.payload);
        if (typeof caps !== 'string') return this.#refuse(bad('malformed', caps.bad));
        this.#caps = parseCaps(caps);
        this.emit('caps', this.#caps);
        break;
      }
      case EOS:
        closeAll(this.#sock, c.fds);
        this.#eos = true;
        this.#deliver(null);
        break;
      case RELEASE_BUFFER:
        closeAll(this.#sock, c.fds);
        return this.#refuse(bad('malformed', 'a sink sent release-buffer, which only a client sends'));
      default:
        // GStreamer ignores commands it does not know (the protocol may grow); so do we
        closeAll(this.#sock, c.fds);
    }
  }

  #onNewBuffer(c: Command): void {
    const b = decodeNewBuffer(c.payload);
    if ('bad' in b) {
      closeAll(this.#sock, c.fds);
      if (b.id !== null) this.#giveBack(b.id); // the sink holds it for us until told
      return this.#refuse(bad('malformed', b.bad));
    }
    const refuse = (err: DmaBufChannelError, adopted: UnixFdMemory[]) => {
      for (const m of adopted) m.buffer.close();
      closeAll(this.#sock, c.fds.slice(adopted.length));
      this.#giveBack(b.id); // the sink holds it for us until told
      this.#refuse(err);
    };
    if (c.fds.length !== b.memories.length) {
      return refuse(bad('fdCount', `the buffer has ${b.memories.length} memories, ${c.fds.length} fds came with it`), []);
    }
    let video: GstVideoMeta | null = null;
    for (const meta of b.metas) {
      if (meta.name !== VIDEO_META) continue;
      const v = decodeVideoMeta(meta);
      if (typeof v === 'string') return refuse(bad('malformed', v), []);
      video ??= v;
    }
    const memories: UnixFdMemory[] = [];
    for (const [i, fd] of c.fds.entries()) {
      const range = b.memories[i];
      let buffer: DmaBuf;
      try {
        buffer = adoptDmaBuf(fd, false, undefined, 'sharedMemory');
      } catch (err) {
        return refuse(bad('notDmaBuf', `memory ${i} is not a buffer this process can adopt: ${(err as Error).message}`), memories);
      }
      memories.push({ buffer, offset: range.offset, size: range.size });
      if (b.memoryType === 'dmabuf' && !buffer.isDmaBuf) {
        return refuse(bad('notDmaBuf', `memory ${i} is described as a dma-buf but is a ${buffer.tier}`), memories);
      }
      if (range.offset + range.size > buffer.size) {
        return refuse(bad('malformed', `memory ${i} says ${range.size} bytes at offset ${range.offset}, its fd has ${buffer.size}`), memories);
      }
    }
    const conn = this.#conn;
    const id = b.id;
    this.#deliver(new UnixFdFrame(INTERNAL_CONSTRUCTOR, b, memories, this.#caps, video, () => this.#giveBackOn(conn, id)));
  }

  #giveBack(id: bigint): void {
    this.#giveBackOn(this.#conn, id);
  }

  /** RELEASE_BUFFER for `id`; a connection already gone took every buffer back with it */
  #giveBackOn(conn: UnixFdConnection, id: bigint): void {
    if (conn.endReason) return;
    try {
      conn.send(RELEASE_BUFFER, encodeRelease(id));
    } catch {
      // ended meanwhile: the sink dropped the client's buffers with it
    }
  }

  #deliver(f: UnixFdFrame | null): void {
    const w = this.#waiters.shift();
    if (!this.#waiters.length) this.#conn.reading = false;
    w?.resolve(f);
  }

  #refuse(err: DmaBufChannelError): void {
    const w = this.#waiters.shift();
    if (!this.#waiters.length) this.#conn.reading = false;
    if (w) w.reject(err);
    else this.emit('refused', err);
  }

  #onEnd(reason: DmaBufChannelError): void {
    for (const w of this.#waiters.splice(0)) w.reject(reason);
    process.nextTick(() => this.emit('close', reason));
  }
}

