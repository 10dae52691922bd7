/**
 * One unixfd connection (a stream socket speaking GStreamer's protocol), either side: commands
 * out with their fds, queued while the socket is full; commands in, read only while someone
 * wants them (the source: while a receive waits, which is its backpressure; the sink: always,
 * releases must not pile up). Nothing blocks; the socket is watched on the event loop only
 * while there is something to do. What to do with a command is the owner's (source.ts, sink.ts).
 */
import { bad, closed, type DmaBufChannelError } from '../errors';
import { StreamReassembler } from '../reassembler';
import { closeAll, READABLE, SocketWatch, WRITABLE, type ReceivedMessage, type Sockets } from '../socket';
import { COMMAND_HEADER, decodeCommandHeader, encodeCommand, type CommandHeader } from './protocol';

/** the most fds one command may carry: NewBufferPayload's n_memory is a u8 */
const MAX_FDS = 255;

/** what sendmsg says when the peer is gone */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN']);

/** A received command: its fds are the handler's to adopt or close. */
export interface Command {
  type: number;
  payload: Buffer;
  fds: number[];
}

export interface ConnectionHandlers {
  /** a whole command arrived */
  command(c: Command): void;
  /** a command was refused on the way in (its fds already closed); the connection goes on */
  refused(err: DmaBufChannelError): void;
  /** the connection ended (once): close(), the peer, an error */
  end(reason: DmaBufChannelError): void;
}

interface Outgoing {
  bytes: Buffer;
  sent: number;
  fds: number[];
  /** whether `fds` are our own duplicates, closed once sent (a queued command must not depend on the caller's fds) */
  owned: boolean;
}

export class UnixFdConnection {
  readonly #sock: Sockets;
  #fd: number;
  readonly #handlers: ConnectionHandlers;
  readonly #stream: StreamReassembler<CommandHeader>;
  readonly #outgoing: Outgoing[] = [];
  readonly #watcher: SocketWatch;
  #reading = false;
  #ended: DmaBufChannelError | null = null;
  /**
   * The peer stopped reading (sendmsg: EPIPE, ECONNRESET): what it sent before is still ours to
   * read (unixfdsink sends EOS and closes while our last releases are on their way), so the
   * connection ends when reading meets the end, not here; sends are dropped meanwhile.
   */
  #peerGone = false;

  /**
   * @param sock the socket calls
   * @param fd a connected stream socket, now this connection's
   * @param maxPayload the longest command payload accepted; a longer one ends the connection
   * @param handlers what to do with what arrives
   */
  constructor(sock: Sockets, fd: number, maxPayload: number, handlers: ConnectionHandlers) {
    this.#sock = sock;
    this.#fd = fd;
    this.#handlers = handlers;
    this.#watcher = new SocketWatch(sock, fd, (err) => this.#onPoll(err));
    this.#stream = new StreamReassembler(sock, COMMAND_HEADER, (head) => decodeCommandHeader(head, maxPayload));
  }

  get fd(): number {
    return this.#fd;
  }

  get endReason(): DmaBufChannelError | null {
    return this.#ended;
  }

  /** read commands as they come (true) or leave them in the socket (false) */
  set reading(on: boolean) {
    this.#reading = on;
    if (on) this.#read();
    this.#watch();
  }

  /**
   * Send a command with `fds` (each duplicated by the kernel into the peer; the caller keeps
   * its own). Throws once ended; to a peer that stopped reading it is dropped (the connection
   * ends when reading meets the peer's end).
   */
  send(type: number, payload: Buffer, fds: readonly number[] = []): void {
    if (this.#ended) throw this.#ended;
    if (this.#peerGone) return;
    const out: Outgoing = { bytes: encodeCommand(type, payload), sent: 0, fds: [...fds], owned: false };
    const queued = this.#outgoing.length > 0;
    this.#outgoing.push(out);
    if (!queued) this.#flush();
    if (this.#outgoing.includes(out) && out.sent === 0 && out.fds.length) {
      // it waits for the socket: hold our own references
      const dups: number[] = [];
      try {
        for (const fd of out.fds) dups.push(this.#sock.dup(fd, true));
      } catch (err) {
        closeAll(this.#sock, dups);
        this.#outgoing.splice(this.#outgoing.indexOf(out), 1);
        throw err;
      }
      out.fds = dups;
      out.owned = true;
    }
    this.#watch();
  }

  /** End the connection: the socket and every fd held are closed. Idempotent. */
  close(reason: DmaBufChannelError = closed('closed', 'the connection was closed')): void {
    this.#end(reason);
  }

  #watch(): void {
    if (this.#ended) return;
    try {
      this.#watcher.set((this.#reading ? READABLE : 0) | (this.#outgoing.length ? WRITABLE : 0));
    } catch (err) {
      this.#end(closed('error', `cannot watch the socket: ${(err as Error).message}`, err));
    }
  }

  #onPoll(err: Error | null): void {
    if (err) {
      this.#end(closed('error', `the socket failed: ${err.message}`, err));
      return;
    }
    this.#flush();
    if (this.#reading) this.#read();
    this.#watch();
  }

  #flush(): void {
    while (this.#outgoing.length && !this.#ended) {
      const out = this.#outgoing[0];
      let n: number;
      try {
        n = this.#sock.sendFds(this.#fd, out.sent ? out.bytes.subarray(out.sent) : out.bytes, out.sent ? [] : out.fds);
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        if (PEER_GONE.has(code)) {
          // nothing more goes out; what the peer sent before it went is read to its end
          this.#peerGone = true;
          for (const o of this.#outgoing.splice(0)) this.#release(o);
          return;
        }
        // half a command on the stream would garble every later one: any other failure ends it
        this.#end(closed('error', `sending failed: ${(err as Error).message}`, err));
        return;
      }
      if (out.sent === 0) this.#release(out); // the fds went with the first bytes
      out.sent += n;
      if (out.sent >= out.bytes.length) this.#outgoing.shift();
    }
  }

  /** drop a sent (or abandoned) command's fds: closed when they are ours */
  #release(out: Outgoing): void {
    if (out.owned) closeAll(this.#sock, out.fds);
    out.fds = [];
    out.owned = false;
  }

  #read(): void {
    while (this.#reading && !this.#ended) {
      let r: ReceivedMessage;
      try {
        r = this.#sock.recvFds(this.#fd, this.#stream.want(), MAX_FDS);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        this.#end(closed(code === 'ECONNRESET' ? 'peerClosed' : 'error', `receiving failed: ${(err as Error).message}`, err));
        return;
      }
      if (r.eof || (r.payload.length === 0 && r.fds.length === 0)) {
        this.#end(this.#stream.atStart ? closed('peerClosed', 'the peer closed the connection') : closed('midMessage', 'the peer closed the connection in the middle of a command'));
        return;
      }
      const problem = r.controlTruncated
        ? bad('controlTruncated', `the control data was truncated: more than ${MAX_FDS} fds, or more than this process could open (EMFILE)`)
        : r.foreignControl
          ? bad('foreignControl', 'a control message other than SCM_RIGHTS arrived')
          : null;
      const fed = this.#stream.feed(r.payload, r.fds, problem);
      switch (fed.kind) {
        case 'more':
          break;
        case 'unfollowable':
          this.#end(closed('error', `the connection was closed: ${fed.reason}`, bad('malformed', fed.reason)));
          return;
        case 'refused':
          this.#handlers.refused(fed.err);
          break;
        case 'frame':
          this.#handlers.command({ type: fed.header.type, payload: fed.body, fds: fed.fds });
      }
    }
  }

  #end(reason: DmaBufChannelError): void {
    if (this.#ended) return;
    this.#ended = reason;
    this.#watcher.stop();
    closeAll(this.#sock, [this.#fd]);
    this.#fd = -1;
    this.#stream.drop();
    for (const out of this.#outgoing.splice(0)) this.#release(out);
    this.#handlers.end(reason);
  }
}
