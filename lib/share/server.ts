/**
 * DmaBufServer: DmaBufChannel.listen()'s server. Listening, accepting and who may connect are
 * the Listener's (listener.ts); this makes each admitted connection a DmaBufChannel.
 */
import { EventEmitter } from 'node:events';
import { checkConstructorToken, type INTERNAL_CONSTRUCTOR } from '../internal-token';
import type { DmaBufChannel } from './channel';
import type { DmaBufChannelError } from './errors';
import { limits } from './frame';
import { Listener, type ListenOptions, type PeerCredentials, type RefusedConnectionReason } from './listener';
import { closeAll, socketType, type ChannelType, type Sockets } from './socket';

/** The events of a DmaBufServer<Receive, Send> and their arguments. */
export interface DmaBufServerEvents<Receive = unknown, Send = Receive> {
  /** a client connected: the channel is yours to receive from, send on and close */
  connection: [channel: DmaBufChannel<Receive, Send>];
  /** a message one of its channels' `for await` skipped (and closed the fds of) */
  refused: [err: DmaBufChannelError, channel: DmaBufChannel<Receive, Send>];
  /**
   * A connection was closed as soon as it was accepted, before 'connection': `reason` says why
   * ('notAllowed': allow() did not return true; 'allowThrew': it threw, `error` is what;
   * 'maxConnections': that many were open). `peer` is who it was (SO_PEERCRED).
   */
  refusedConnection: [peer: PeerCredentials, reason: RefusedConnectionReason, error?: unknown];
  /** accept(2) or the socket's poll failed; only emitted when someone listens */
  error: [err: Error];
  /** close() was called; the socket file is gone */
  close: [];
}

/** @inline */
type ServerListener<K extends keyof DmaBufServerEvents, Receive, Send> = (...args: DmaBufServerEvents<Receive, Send>[K]) => void;

// Typed events without needing a generic EventEmitter in the user's @types/node.
export interface DmaBufServer<Receive = unknown, Send = Receive> {
  /**
   * Listen for `event` (the events and their arguments: {@link DmaBufServerEvents}).
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  on<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Listen for the next `event` only.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  once<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Listen for `event`, as on().
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  addListener<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Listen for `event`, ahead of the listeners already there.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  prependListener<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Listen for the next `event` only, ahead of the listeners already there.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  prependOnceListener<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Stop a listener, as removeListener().
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  off<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Stop a listener added for `event`.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  removeListener<K extends keyof DmaBufServerEvents>(event: K, listener: ServerListener<K, Receive, Send>): this;
  /**
   * Call `event`'s listeners (the package emits its own events; this is EventEmitter's, typed).
   *
   * @param event the event's name
   * @param args the event's arguments
   * @returns whether it had listeners
   */
  emit<K extends keyof DmaBufServerEvents>(event: K, ...args: DmaBufServerEvents<Receive, Send>[K]): boolean;
}

/**
 * A listening AF_UNIX socket. Emits 'connection' (DmaBufChannel), 'refusedConnection' (peer,
 * reason, error?: a connection closed at once for allow() or maxConnections), 'refused' (err,
 * channel: a message one of its channels' `for await` skipped), 'close', and 'error' only to a
 * listener: nothing a peer does ends the process. Keeps the event loop alive until close().
 * (Events and their arguments: DmaBufServerEvents.)
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class DmaBufServer<Receive = unknown, Send = Receive> extends EventEmitter {
  /** the socket's path; the file is removed by close() */
  readonly path: string;
  /** the accepted channels' type */
  readonly type: ChannelType;
  readonly #listener: Listener;

  /**

   * Not for users: DmaBufChannel.listen() makes one (the token is the package's own).

   *

   * @hidden

   */
  constructor(
    token: typeof INTERNAL_CONSTRUCTOR,
    sock: Sockets,
    path: string,
    options: { type?: ChannelType; maxFds?: number; maxPayload?: number } & ListenOptions,
    channel: (fd: number, peer: PeerCredentials) => DmaBufChannel<Receive, Send>,
  ) {
    checkConstructorToken(token, 'DmaBufChannel.listen()');
    super();
    this.path = path;
    // === undefined, as connect/pair/fromFd: a type given as null is refused by socketType, not read as missing
    this.type = options.type === undefined ? 'seqpacket' : options.type;
    const type = socketType(this.type);
    limits(options);
    this.#listener = new Listener(
      sock,
      path,
      type,
      options,
      (fd, peer, done) => {
        let ch: DmaBufChannel<Receive, Send>;
        try {
          ch = channel(fd, peer); // the channel owns the fd from here
        } catch (e) {
          closeAll(sock, [fd]);
          done();
          if (this.listenerCount('error') > 0) this.emit('error', e as Error);
          return;
        }
        ch.on('refused', (e: DmaBufChannelError) => this.emit('refused', e, ch));
        // an fd came free, and one connection fewer counts against maxConnections
        ch.once('close', done);
        this.emit('connection', ch);
      },
      {
        refused: (peer, reason, error) => {
          if (error === undefined) this.emit('refusedConnection', peer, reason);
          else this.emit('refusedConnection', peer, reason, error);
        },
        // 'error' only where someone listens: nothing a peer does may end the process
        error: (err) => {
          if (this.listenerCount('error') > 0) this.emit('error', err);
        },
      },
    );
  }

  /** whether close() ran */
  get closed(): boolean {
    return this.#listener.closed;
  }

  /** channels this server made that have not closed yet (what maxConnections counts) */
  get connections(): number {
    return this.#listener.connections;
  }

  /**
   * Stop listening and remove the socket file. Channels already accepted stay open. Idempotent.
   *
   * @throws Nothing: a second close() does nothing; a socket file already gone is no error.
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * const server = DmaBufChannel.listen('/tmp/camera.sock');
   * server.once('connection', (channel) => {
   *   server.close(); // one client only
   *   channel.close();
   * });
   * ```
   */
  close(): void {
    if (this.#listener.closed) return;
    this.#listener.close();
    process.nextTick(() => this.emit('close'));
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { DmaBufChannel } from 'dma-heap';
   * {
   *   using server = DmaBufChannel.listen('/tmp/camera.sock');
   * } // closed, the socket file removed
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}
