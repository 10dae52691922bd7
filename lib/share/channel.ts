import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import type { Addon, Poller, ReceivedMessage } from '../native/addon';
import { fromFd } from '../adopt';
import { DmaBuf, type Tier } from '../dmabuf';
import { DmaBufStateError } from '../errors';
import { addonStatus, loadAddon } from '../native/load';

/**
 * Passing dma-bufs between processes without copying: to a child through spawn's
 * stdio, to any process through an AF_UNIX socket (SCM_RIGHTS).
 *
 * Workers need nothing of this: a worker shares the process's fd table, but the
 * addon closes the fds each JS environment owns when it ends, so hand a worker
 * the fd number and let it take its own reference with `fromFd(fd, { dup: true })`
 * while the sender still holds the buffer.
 */

/** The environment variable that tells a child which fds are buffers (JSON, see BufferMeta). */
export const FDS_ENV = 'DMA_HEAP_FDS';

/** SCM_MAX_FD: Linux refuses more fds in one sendmsg. */
export const MAX_FDS_PER_MESSAGE = 253;

/** What travels beside each fd: enough for the receiver to check it got what was meant. */
export interface BufferMeta {
  size: number;
  tier: Tier;
  name?: string;
}

export interface InheritedBufferMeta extends BufferMeta {
  fd: number;
}

const SHAREABLE: readonly Tier[] = ['dma-heap', 'udmabuf', 'memfd'];
const isRealTier = (tier: Tier) => tier === 'dma-heap' || tier === 'udmabuf';

function typeError(message: string): TypeError {
  return Object.assign(new TypeError(message), { code: 'ERR_INVALID_ARG_TYPE' });
}

function requireAddon(): Addon {
  const addon = loadAddon();
  if (!addon) {
    throw Object.assign(new Error(`passing buffers between processes needs the native addon: ${addonStatus().reason}`), {
      code: 'ERR_DMA_HEAP_NO_ADDON',
    });
  }
  return addon;
}

export type BadReason = 'controlTruncated' | 'foreignControl' | 'truncated' | 'malformed' | 'fdCount' | 'notDmaBuf';
export type ClosedReason = 'closed' | 'peerClosed' | 'midMessage' | 'error';

/**
 * code 'ERR_DMA_HEAP_BAD_MESSAGE' (reason: BadReason): a message was refused and every
 * fd it carried closed; code 'ERR_DMA_HEAP_CHANNEL_CLOSED' (reason: ClosedReason): the
 * channel is over, by close(), the peer, or an error (in `cause`).
 */
export class DmaBufChannelError extends Error {
  code: 'ERR_DMA_HEAP_BAD_MESSAGE' | 'ERR_DMA_HEAP_CHANNEL_CLOSED';
  reason: BadReason | ClosedReason;
  constructor(code: DmaBufChannelError['code'], reason: DmaBufChannelError['reason'], message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'DmaBufChannelError';
    this.code = code;
    this.reason = reason;
  }
}

const bad = (reason: BadReason, message: string) =>
  new DmaBufChannelError('ERR_DMA_HEAP_BAD_MESSAGE', reason, `bad message refused, its fds closed: ${message}`);
const closed = (reason: ClosedReason, message: string, cause?: unknown) =>
  new DmaBufChannelError('ERR_DMA_HEAP_CHANNEL_CLOSED', reason, message, cause);

/** Close fds that are ours and no one else's; the first error must not leak the rest. */
function closeAll(addon: Addon, fds: Iterable<number>): void {
  for (const fd of fds) {
    try {
      addon.close(fd);
    } catch {
      // The number is freed even when close reports an error.
    }
  }
}

function describe(buf: unknown, what: string): BufferMeta {
  if (!(buf instanceof DmaBuf)) throw typeError(`${what} must be a DmaBuf`);
  const b = buf;
  if (b.closed) throw new DmaBufStateError('ERR_DMA_BUF_CLOSED', `${what} is closed`);
  if (!SHAREABLE.includes(b.tier)) {
    throw new DmaBufStateError(
      'ERR_DMA_HEAP_NOT_SHAREABLE',
      `${what} lives in JS memory (tier '${b.tier}'): only dma-heap, udmabuf and memfd buffers have an fd another process can map`,
    );
  }
  const meta: BufferMeta = { size: b.size, tier: b.tier };
  const name = b.info().name;
  if (name !== undefined) meta.name = name;
  return meta;
}

function validateBuffers(buffers: unknown): BufferMeta[] {
  if (!Array.isArray(buffers)) throw typeError('buffers must be an array of DmaBuf');
  if (buffers.length > MAX_FDS_PER_MESSAGE) {
    throw Object.assign(new RangeError(`at most ${MAX_FDS_PER_MESSAGE} buffers go in one message (SCM_MAX_FD), got ${buffers.length}`), {
      code: 'ERR_OUT_OF_RANGE',
    });
  }
  return buffers.map((b, i) => describe(b, `buffers[${i}]`));
}

/** Check a peer's description of one buffer; returns why it is wrong, or undefined. */
function badMeta(m: unknown): string | undefined {
  if (!m || typeof m !== 'object') return 'a buffer description is not an object';
  const { size, tier, name } = m as Record<string, unknown>;
  if (!Number.isSafeInteger(size) || (size as number) <= 0) return `bad buffer size ${JSON.stringify(size)}`;
  if (!SHAREABLE.includes(tier as Tier)) return `bad buffer tier ${JSON.stringify(tier)}`;
  if (name !== undefined && typeof name !== 'string') return 'bad buffer name';
  return undefined;
}

/**
 * Adopt received fds as DmaBufs, checking each against its description. Either every
 * fd becomes a buffer, or every fd and buffer is closed and the reason is thrown.
 */
function adoptAll(addon: Addon, fds: number[], metas: BufferMeta[]): DmaBuf[] {
  const out: DmaBuf[] = [];
  try {
    fds.forEach((fd, i) => {
      let buf: DmaBuf;
      try {
        buf = fromFd(fd, { dup: false });
      } catch (err) {
        throw bad('notDmaBuf', `fd ${i} is not a buffer this process can adopt: ${(err as Error).message}`);
      }
      out.push(buf);
      const meta = metas[i];
      if (buf.size !== meta.size) throw bad('malformed', `buffer ${i} is ${buf.size} bytes, the message says ${meta.size}`);
      if (isRealTier(meta.tier) && !buf.isDmaBuf) {
        throw bad('notDmaBuf', `buffer ${i} is described as a dma-buf (${meta.tier}) but is a ${buf.tier}`);
      }
    });
    return out;
  } catch (err) {
    for (const b of out) b.close();
    closeAll(addon, fds.slice(out.length)); // fromFd leaves the fd to the caller when it throws
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// To a child: spawn's stdio

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
  const addon = requireAddon();
  const out: DmaBuf[] = [];
  try {
    for (const e of entries) {
      // dup:true gives an O_CLOEXEC fd; the inherited one has none and goes.
      out.push(fromFd(e.fd, { dup: true }));
      addon.close(e.fd);
      const buf = out[out.length - 1];
      if (buf.size !== e.size) throw new DmaBufChannelError('ERR_DMA_HEAP_BAD_MESSAGE', 'malformed', `inherited fd ${e.fd} is ${buf.size} bytes, ${FDS_ENV} says ${e.size}`);
      if (isRealTier(e.tier) && !buf.isDmaBuf) {
        throw new DmaBufChannelError('ERR_DMA_HEAP_BAD_MESSAGE', 'notDmaBuf', `inherited fd ${e.fd} is described as a dma-buf but is a ${buf.tier}`);
      }
      restoreName(buf, e.name);
    }
  } catch (err) {
    for (const b of out) b.close();
    closeAll(addon, entries.slice(out.length).map((e) => e.fd));
    throw err;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// To any process: AF_UNIX sockets

export type ChannelType = 'seqpacket' | 'stream';

export interface ChannelOptions {
  /** 'seqpacket' (default): the kernel keeps message boundaries; 'stream': frames carry their length */
  type?: ChannelType;
  /** most fds one received message may carry (default 64, at most 253); more is a bad message */
  maxFds?: number;
  /** most bytes of JSON (buffer descriptions + payload) in one message (default 64 KiB, at most 16 MiB;
   *  a seqpacket message must also fit the socket's send buffer, ~208 KiB by default) */
  maxPayload?: number;
}

export interface ChannelMessage<P = unknown> {
  /** the received buffers, now this process's to close */
  buffers: DmaBuf[];
  /** the sender's payload, as JSON.parse returned it (undefined if none was sent) */
  payload: P;
}

/*
 * Framing. Every message is one frame: a 12-byte header, then UTF-8 JSON
 * `{"buffers":[BufferMeta...],"payload":...}`, with the fds in SCM_RIGHTS.
 *   0 u32le magic 'DMAB'   4 u8 version (1)   5 u8 flags (0)   6 u16le fd count   8 u32le JSON length
 * seqpacket: one frame = one sendmsg = one recvmsg, fds with it.
 * stream: the sender starts every frame with a sendmsg of its own carrying the frame's
 * fds (the rest, if the send was short, follows without fds). Linux hands fds to the
 * recvmsg that reads the first byte of their sendmsg and stops after it, so the
 * receiver never reads past the current frame (it asks for the header, then exactly
 * the JSON length): a frame's fds arrive with the read of its first byte, nowhere else.
 */
const MAGIC = 0x42414d44; // 'DMAB'
const VERSION = 1;
const HEADER = 12;
const DEFAULT_MAX_FDS = 64;
const DEFAULT_MAX_PAYLOAD = 64 * 1024;
/** a seqpacket receive allocates maxPayload up front; metadata this big is a mistake */
const MAX_PAYLOAD = 16 * 1024 * 1024;

interface Header {
  fdCount: number;
  length: number;
}

function encodeFrame(metas: BufferMeta[], payload: unknown, maxPayload: number): Buffer {
  const json = Buffer.from(JSON.stringify(payload === undefined ? { buffers: metas } : { buffers: metas, payload }), 'utf8');
  if (json.length > maxPayload) {
    throw Object.assign(new RangeError(`the message's JSON is ${json.length} bytes, more than maxPayload (${maxPayload})`), {
      code: 'ERR_OUT_OF_RANGE',
    });
  }
  const frame = Buffer.alloc(HEADER + json.length);
  frame.writeUInt32LE(MAGIC, 0);
  frame.writeUInt8(VERSION, 4);
  frame.writeUInt16LE(metas.length, 6);
  frame.writeUInt32LE(json.length, 8);
  json.copy(frame, HEADER);
  return frame;
}

/** the header, or why it is not one */
function decodeHeader(bytes: Buffer, maxPayload: number): Header | string {
  if (bytes.length < HEADER) return `${bytes.length} bytes are not a frame header`;
  if (bytes.readUInt32LE(0) !== MAGIC) return 'not a dma-heap frame (bad magic)';
  if (bytes[4] !== VERSION) return `unknown frame version ${bytes[4]}`;
  if (bytes[5] !== 0) return `unknown frame flags ${bytes[5]}`;
  const length = bytes.readUInt32LE(8);
  if (length > maxPayload) return `the frame's JSON is ${length} bytes, more than maxPayload (${maxPayload})`;
  return { fdCount: bytes.readUInt16LE(6), length };
}

function socketType(addon: Addon, type: ChannelType | undefined): number {
  if (type === undefined || type === 'seqpacket') return addon.abi.SOCK_SEQPACKET;
  if (type === 'stream') return addon.abi.SOCK_STREAM;
  throw Object.assign(new TypeError(`type must be 'seqpacket' or 'stream', got ${JSON.stringify(type)}`), { code: 'ERR_INVALID_ARG_VALUE' });
}

function limits(options: ChannelOptions): { maxFds: number; maxPayload: number } {
  const maxFds = options.maxFds ?? DEFAULT_MAX_FDS;
  const maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (!Number.isInteger(maxFds) || maxFds < 0 || maxFds > MAX_FDS_PER_MESSAGE) {
    throw Object.assign(new RangeError(`maxFds must be an integer from 0 to ${MAX_FDS_PER_MESSAGE}, got ${maxFds}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  if (!Number.isInteger(maxPayload) || maxPayload < 64 || maxPayload > MAX_PAYLOAD) {
    throw Object.assign(new RangeError(`maxPayload must be an integer from 64 to ${MAX_PAYLOAD}, got ${maxPayload}`), { code: 'ERR_OUT_OF_RANGE' });
  }
  return { maxFds, maxPayload };
}

const READABLE = 1;
const WRITABLE = 2;
/** what sendmsg says when the peer is gone */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN']);

interface Waiter {
  resolve(m: ChannelMessage<any>): void;
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

/**
 * One end of a connection that carries buffers: `send(buffers, payload)` on one side,
 * `receive()` (or `for await`) on the other. Nothing blocks: the socket is watched on
 * the event loop only while a receive or a send is waiting.
 */
export class DmaBufChannel {
  readonly type: ChannelType;
  readonly #addon: Addon;
  #fd: number;
  readonly #maxFds: number;
  readonly #maxPayload: number;
  #poller: Poller | null = null;
  #events = 0;
  #ended: DmaBufChannelError | null = null;
  readonly #waiters: Waiter[] = [];
  readonly #outgoing: Outgoing[] = [];
  // stream reassembly: the frame being read
  #head = Buffer.alloc(HEADER);
  #headLen = 0;
  #header: Header | null = null;
  #body: Buffer = Buffer.alloc(0);
  #bodyGot = 0;
  #fds: number[] = [];
  #bad: DmaBufChannelError | null = null;

  /** @internal: use connect, pair, DmaBufServer or fromFd */
  constructor(addon: Addon, fd: number, type: ChannelType, options: ChannelOptions = {}) {
    this.#addon = addon;
    this.#fd = fd;
    this.type = type;
    ({ maxFds: this.#maxFds, maxPayload: this.#maxPayload } = limits(options));
  }

  /** Connect to a DmaBufServer listening at `path` (it must have the same type). */
  static connect(path: string, options: ChannelOptions = {}): DmaBufChannel {
    const addon = requireAddon();
    const type = options.type ?? 'seqpacket';
    limits(options);
    const fd = addon.socket(socketType(addon, type));
    try {
      addon.connect(fd, path);
    } catch (err) {
      closeAll(addon, [fd]);
      throw err;
    }
    return new DmaBufChannel(addon, fd, type, options);
  }

  /** Listen at `path` (a filesystem socket; removed again by server.close()). */
  static listen(path: string, options: ChannelOptions & { backlog?: number } = {}): DmaBufServer {
    return new DmaBufServer(requireAddon(), path, options);
  }

  /** Two connected ends (socketpair): for tests, or to hand one end to a child through stdio. */
  static pair(options: ChannelOptions = {}): [DmaBufChannel, DmaBufChannel] {
    const addon = requireAddon();
    const type = options.type ?? 'seqpacket';
    limits(options);
    const [a, b] = addon.socketpair(socketType(addon, type));
    return [new DmaBufChannel(addon, a, type, options), new DmaBufChannel(addon, b, type, options)];
  }

  /**
   * Adopt a connected AF_UNIX socket, e.g. one end of a pair() inherited through stdio.
   * The fd is replaced by an O_CLOEXEC duplicate; it must be non-blocking (pair()'s are,
   * and a child shares that flag with its parent).
   */
  static fromFd(fd: number, options: ChannelOptions = {}): DmaBufChannel {
    const addon = requireAddon();
    const type = options.type ?? 'seqpacket';
    socketType(addon, type);
    limits(options);
    const own = addon.dup(fd, true);
    closeAll(addon, [fd]);
    return new DmaBufChannel(addon, own, type, options);
  }

  /** the socket's fd; -1 once closed */
  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#ended !== null;
  }

  /**
   * Send buffers (each fd is duplicated into the receiver by the kernel: the caller
   * keeps its own) and a JSON-able payload. Resolves once the kernel has it all.
   */
  send(buffers: DmaBuf[], payload?: unknown): Promise<void> {
    if (this.#ended) return Promise.reject(this.#ended);
    let frame: Buffer;
    try {
      frame = encodeFrame(validateBuffers(buffers), payload, this.#maxPayload);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      const out: Outgoing = { frame, sent: 0, fds: buffers.map((b) => b.fd), dups: false, resolve, reject };
      this.#outgoing.push(out);
      this.#flush();
      if (this.#outgoing.includes(out) && out.sent === 0) {
        // It waits for the socket: hold our own references, the caller may close theirs.
        const dups: number[] = [];
        try {
          for (const fd of out.fds) dups.push(this.#addon.dup(fd, true));
          out.fds = dups;
          out.dups = true;
        } catch (err) {
          closeAll(this.#addon, dups);
          this.#outgoing.splice(this.#outgoing.indexOf(out), 1);
          reject(err as Error);
        }
      }
      this.#watch();
    });
  }

  /** The next message. Rejects with a DmaBufChannelError for a bad message (the channel
   *  goes on) or when the channel is over. */
  receive<P = unknown>(): Promise<ChannelMessage<P>> {
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise<ChannelMessage<P>>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#read();
      this.#watch();
    });
  }

  /** Messages until the channel closes; a bad message ends the loop by throwing. */
  async *[Symbol.asyncIterator](): AsyncGenerator<ChannelMessage> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (err) {
        const reason = (err as DmaBufChannelError).reason;
        if ((err as DmaBufChannelError).code === 'ERR_DMA_HEAP_CHANNEL_CLOSED' && (reason === 'closed' || reason === 'peerClosed')) return;
        throw err;
      }
    }
  }

  /** Close the socket; waiting receives and sends reject with ERR_DMA_HEAP_CHANNEL_CLOSED. Idempotent. */
  close(): void {
    this.#end(closed('closed', 'the channel was closed'));
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Watch the socket for what is waiting; a watch nothing waits for is dropped. */
  #watch(): void {
    if (this.#ended) return;
    const events = (this.#waiters.length ? READABLE : 0) | (this.#outgoing.length ? WRITABLE : 0);
    if (events === this.#events) return;
    this.#poller?.stop();
    this.#poller = null;
    this.#events = events;
    if (events) {
      try {
        this.#poller = this.#addon.poll(this.#fd, events, (err) => this.#onPoll(err));
      } catch (err) {
        this.#end(closed('error', `cannot watch the socket: ${(err as Error).message}`, err));
      }
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
        n = this.#addon.sendFds(this.#fd, out.sent ? out.frame.subarray(out.sent) : out.frame, out.sent ? [] : out.fds);
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
    if (out.dups) closeAll(this.#addon, out.fds);
    out.fds = [];
    out.dups = false;
  }

  #read(): void {
    while (this.#waiters.length && !this.#ended) {
      const stream = this.type === 'stream';
      const want = !stream ? HEADER + this.#maxPayload : this.#header ? this.#body.length - this.#bodyGot : HEADER - this.#headLen;
      let r: ReceivedMessage;
      try {
        r = this.#addon.recvFds(this.#fd, want, this.#maxFds);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        this.#end(closed(code === 'ECONNRESET' ? 'peerClosed' : 'error', `receiving failed: ${(err as Error).message}`, err));
        return;
      }
      if (stream) this.#onStreamBytes(r);
      else this.#onPacket(r);
    }
  }

  #onPacket(r: ReceivedMessage): void {
    // We never send empty packets: an empty read is the peer's end.
    if (r.eof || (r.payload.length === 0 && r.fds.length === 0 && !r.truncated && !r.controlTruncated)) {
      this.#end(closed('peerClosed', 'the peer closed the channel'));
      return;
    }
    const problem = this.#controlProblem(r) ?? (r.truncated ? bad('truncated', `the message is longer than maxPayload (${this.#maxPayload})`) : null);
    if (problem) {
      closeAll(this.#addon, r.fds);
      this.#waiters.shift()!.reject(problem);
      return;
    }
    const header = decodeHeader(r.payload, this.#maxPayload);
    if (typeof header === 'string' || r.payload.length !== HEADER + header.length) {
      closeAll(this.#addon, r.fds);
      this.#waiters.shift()!.reject(bad('malformed', typeof header === 'string' ? header : `the frame says ${header.length} bytes of JSON, the packet has ${r.payload.length - HEADER}`));
      return;
    }
    this.#deliver(header, r.payload.subarray(HEADER), r.fds);
  }

  #controlProblem(r: ReceivedMessage): DmaBufChannelError | null {
    if (r.controlTruncated) return bad('controlTruncated', `the control data was truncated: more fds than maxFds (${this.#maxFds})`);
    if (r.foreignControl) return bad('foreignControl', 'a control message other than SCM_RIGHTS arrived');
    return null;
  }

  #onStreamBytes(r: ReceivedMessage): void {
    const atStart = this.#headLen === 0;
    if (r.eof || (r.payload.length === 0 && r.fds.length === 0)) {
      this.#end(atStart ? closed('peerClosed', 'the peer closed the channel') : closed('midMessage', 'the peer closed the channel in the middle of a message'));
      return;
    }
    const problem = this.#controlProblem(r);
    if (problem) this.#poison(problem);
    if (r.fds.length) {
      if (atStart && !this.#bad) this.#fds = r.fds;
      else {
        closeAll(this.#addon, r.fds);
        if (!atStart) this.#poison(bad('malformed', 'fds arrived in the middle of a frame'));
      }
    }
    const bytes = r.payload;
    if (!this.#header) {
      bytes.copy(this.#head, this.#headLen);
      this.#headLen += bytes.length;
      if (this.#headLen < HEADER) return;
      const header = decodeHeader(this.#head, this.#maxPayload);
      if (typeof header === 'string') {
        // No length to trust: the stream can't be followed past this point.
        const err = bad('malformed', header);
        this.#waiters.shift()!.reject(err);
        this.#end(closed('error', `the channel was closed after a malformed frame: ${header}`, err));
        return;
      }
      this.#header = header;
      this.#body = Buffer.alloc(header.length);
      this.#bodyGot = 0;
    } else {
      bytes.copy(this.#body, this.#bodyGot);
      this.#bodyGot += bytes.length;
    }
    if (this.#bodyGot < this.#body.length) return;
    const header = this.#header;
    const body = this.#body;
    const fds = this.#fds;
    const poisoned = this.#bad;
    this.#headLen = 0;
    this.#header = null;
    this.#body = Buffer.alloc(0);
    this.#bodyGot = 0;
    this.#fds = [];
    this.#bad = null;
    if (poisoned) this.#waiters.shift()!.reject(poisoned);
    else this.#deliver(header, body, fds);
  }

  /** The frame being read is bad: drop its fds now, reject it when its last byte is read. */
  #poison(err: DmaBufChannelError): void {
    closeAll(this.#addon, this.#fds);
    this.#fds = [];
    this.#bad ??= err;
  }

  /** Check a whole frame and adopt its fds; a waiter gets the message or the reason it was refused. */
  #deliver(header: Header, json: Buffer, fds: number[]): void {
    const waiter = this.#waiters.shift()!;
    const refuse = (err: DmaBufChannelError) => {
      closeAll(this.#addon, fds);
      waiter.reject(err);
    };
    if (fds.length !== header.fdCount) {
      return refuse(bad('fdCount', `the frame says ${header.fdCount} fds, ${fds.length} came with it`));
    }
    if (header.fdCount > this.#maxFds) return refuse(bad('fdCount', `the frame has ${header.fdCount} fds, more than maxFds (${this.#maxFds})`));
    let body: { buffers?: unknown; payload?: unknown };
    try {
      body = JSON.parse(json.toString('utf8'));
    } catch (err) {
      return refuse(bad('malformed', `the payload is not JSON: ${(err as Error).message}`));
    }
    if (!body || typeof body !== 'object' || !Array.isArray(body.buffers) || body.buffers.length !== fds.length) {
      return refuse(bad('malformed', 'the payload does not describe one buffer per fd'));
    }
    const metas = body.buffers as BufferMeta[];
    const why = metas.map(badMeta).find((w) => w !== undefined);
    if (why) return refuse(bad('malformed', why));
    let buffers: DmaBuf[];
    try {
      buffers = adoptAll(this.#addon, fds, metas);
    } catch (err) {
      waiter.reject(err as Error); // adoptAll closed everything
      return;
    }
    buffers.forEach((buf, i) => restoreName(buf, metas[i].name));
    waiter.resolve({ buffers, payload: body.payload });
  }

  /** The channel is over: every waiter learns why, every fd it holds is closed. */
  #end(err: DmaBufChannelError): void {
    if (this.#ended) return;
    this.#ended = err;
    this.#poller?.stop();
    this.#poller = null;
    this.#events = 0;
    closeAll(this.#addon, [this.#fd, ...this.#fds]);
    this.#fd = -1;
    this.#fds = [];
    for (const out of this.#outgoing.splice(0)) {
      this.#release(out);
      out.reject(err);
    }
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }
}

/**
 * A software framework's name lives in the sending process's JS: give the receiver's
 * framework the same one. A real dma-buf carries its name in the kernel already.
 */
function restoreName(buf: DmaBuf, name: string | undefined): void {
  if (name === undefined || buf.backend !== 'software') return;
  try {
    if (buf.info().name !== name) buf.setName(name);
  } catch {
    // A name is a label: the buffer is fine without it.
  }
}

/**
 * A listening AF_UNIX socket. Emits 'connection' (DmaBufChannel), 'error', 'close'.
 * Keeps the event loop alive until close().
 */
export class DmaBufServer extends EventEmitter {
  readonly path: string;
  readonly type: ChannelType;
  readonly #addon: Addon;
  readonly #options: ChannelOptions;
  #fd: number;
  #poller: Poller | null;

  /** @internal: use DmaBufChannel.listen */
  constructor(addon: Addon, path: string, options: ChannelOptions & { backlog?: number } = {}) {
    super();
    this.#addon = addon;
    this.path = path;
    this.type = options.type ?? 'seqpacket';
    this.#options = { ...options, type: this.type };
    limits(options);
    const fd = addon.socket(socketType(addon, this.type));
    let bound = false;
    try {
      addon.bind(fd, path);
      bound = true;
      addon.listen(fd, options.backlog ?? 511);
      this.#poller = addon.poll(fd, READABLE, (err) => this.#onReadable(err));
    } catch (err) {
      closeAll(addon, [fd]);
      if (bound) unlinkQuietly(path);
      throw err;
    }
    this.#fd = fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  #onReadable(err: Error | null): void {
    if (err) {
      this.emit('error', err);
      return;
    }
    while (this.#fd >= 0) {
      let fd: number;
      try {
        fd = this.#addon.accept(this.#fd);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'ECONNABORTED') continue; // that client gave up; others may wait
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') this.emit('error', e);
        return;
      }
      this.emit('connection', new DmaBufChannel(this.#addon, fd, this.type, this.#options));
    }
  }

  /** Stop listening and remove the socket file. Channels already accepted stay open. Idempotent. */
  close(): void {
    if (this.#fd < 0) return;
    this.#poller?.stop();
    this.#poller = null;
    closeAll(this.#addon, [this.#fd]);
    this.#fd = -1;
    unlinkQuietly(this.path);
    process.nextTick(() => this.emit('close'));
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone: nothing to clean.
  }
}
