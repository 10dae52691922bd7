/**
 * A listening AF_UNIX socket, for any server of lib/share/ (DmaBufServer; GStreamer's unixfd
 * protocol): bind with the file's mode and group set before listen(), the accept loop with its
 * back-off when fds or memory run out, who may connect (SO_PEERCRED, allow(), maxConnections),
 * and the socket file removed on close. What a connection carries is its owner's business:
 * the Listener hands over an fd and the peer's credentials, nothing more.
 */
import { readFileSync, lchownSync, chmodSync, unlinkSync } from 'node:fs';
import { invalidArgType, invalidArgValue, validateInteger } from '../args';
import { DmaHeapError } from '../errors';
import { closeAll, READABLE, type PeerCredentials, type Poller, type Sockets } from './socket';

export type { PeerCredentials } from './socket';

/** The option names of a listening socket (for validateOptions, beside the server's own). */
export const LISTEN_OPTIONS = ['backlog', 'mode', 'group', 'allow', 'maxConnections'] as const;

/**
 * Why a connection was closed as soon as it was accepted: `'notAllowed'` (allow() returned
 * something other than true), `'allowThrew'` (allow() threw: the error comes with it),
 * `'maxConnections'` (that many connections were open already).
 *
 * @inline
 */
export type RefusedConnectionReason = 'notAllowed' | 'allowThrew' | 'maxConnections';

/** Who may connect to a listening socket, and how many at once; listen's backlog. */
export interface ListenOptions {
  /** listen(2)'s backlog: connections the kernel queues before they are accepted (default 511) */
  backlog?: number;
  /**
   * The socket file's permission bits (0 to 0o777, e.g. 0o660): set between bind and listen, so
   * no one connects before they apply. Connecting needs write permission on the file (root
   * needs none). Refused for an abstract path (leading NUL: it has no file). Default: what
   * bind made of the umask.
   */
  mode?: number;
  /**
   * The socket file's group: a gid, or a group name looked up in /etc/group (one file read;
   * directory services such as LDAP are not asked: pass the number). Set between bind and
   * listen (chown needs root, or a group the process is in). Refused for an abstract path.
   */
  group?: number | string;
  /**
   * Called with each new connection's peer (pid, uid, gid: SO_PEERCRED) before anyone sees the
   * connection; anything but `true` closes it at once (so does a throw; an async function's
   * promise is not awaited: allow() must answer at once).
   */
  allow?: (peer: PeerCredentials) => boolean;
  /**
   * Most connections open at once (1 to 2^31-1; default: no limit beyond the fds the process may
   * open). A connection beyond it is accepted and closed at once.
   */
  maxConnections?: number;
}

/** What a Listener tells its owner beside connections: each one optional. */
export interface ListenerReports {
  /** a connection was closed as soon as it was accepted (`error`: what allow() threw) */
  refused?(peer: PeerCredentials, reason: RefusedConnectionReason, error?: unknown): void;
  /** accept(2) or the socket's poll failed (a shortage of fds or memory: once per shortage) */
  error?(err: Error): void;
}

/** ListenOptions after their checks: group a gid, defaults filled in */
interface Checked {
  backlog: number;
  mode: number | undefined;
  group: number | undefined;
  allow: ((peer: PeerCredentials) => boolean) | undefined;
  maxConnections: number;
}

/** accept() failing for want of fds or kernel memory: back off, don't spin */
const OUT_OF_RESOURCES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);
/** accept() failing for one client alone (it gave up, or was refused): others may wait */
const ONE_CLIENT = new Set(['ECONNABORTED', 'EPROTO', 'EPERM', 'EINTR']);
/**
 * Accepts per readable event: a flood of connections must not keep the event loop in the accept
 * loop. The poll is level-triggered: what is left is accepted on the loop's next turn, after
 * the other handles had theirs.
 */
const ACCEPTS_PER_TURN = 64;
const MAX_GID = 0xfffffffe; // (gid_t)-1 means "leave unchanged" to chown

/**
 * A socket path: a string; a filesystem path has no NUL (the kernel would stop at it and bind
 * another path than asked); a leading NUL names Linux's abstract namespace.
 */
export function validatePath(path: unknown): string {
  if (typeof path !== 'string') throw invalidArgType('path', 'of type string', path);
  if (path === '' || (path[0] !== '\0' && path.includes('\0'))) {
    throw invalidArgValue('path', path, 'must be a non-empty filesystem path without NUL bytes (or start with NUL for the abstract namespace)');
  }
  return path;
}

/**
 * Check a listening socket's options (the keys were checked by validateOptions) against its path.
 * A group name is resolved here: one read of /etc/group.
 */
export function checkListenOptions(path: string, options: ListenOptions): Checked {
  const abstract = path[0] === '\0';
  const backlog = options.backlog === undefined ? 511 : validateInteger(options.backlog, 'options.backlog', 0, 0x7fffffff);
  let mode: number | undefined;
  if (options.mode !== undefined) {
    mode = validateInteger(options.mode, 'options.mode', 0, 0o777);
    if (abstract) throw invalidArgValue('options.mode', mode, 'can not be set on an abstract socket (it has no file; check peers with allow())');
  }
  let group: number | undefined;
  if (options.group !== undefined) {
    const g: unknown = options.group;
    if (typeof g === 'number') group = validateInteger(g, 'options.group', 0, MAX_GID);
    else if (typeof g === 'string') group = groupId(g);
    else throw invalidArgType('options.group', 'of type number or string', g);
    if (abstract) throw invalidArgValue('options.group', g, 'can not be set on an abstract socket (it has no file; check peers with allow())');
  }
  const allow: unknown = options.allow;
  if (allow !== undefined && typeof allow !== 'function') throw invalidArgType('options.allow', 'of type function', allow);
  const maxConnections = options.maxConnections === undefined ? Infinity : validateInteger(options.maxConnections, 'options.maxConnections', 1, 0x7fffffff);
  return { backlog, mode, group, allow: allow as Checked['allow'], maxConnections };
}

/** A group name's gid from /etc/group; ERR_INVALID_ARG_VALUE for a name that is not there. */
function groupId(name: string): number {
  if (name === '' || /[:\n\0]/.test(name)) throw invalidArgValue('options.group', name, 'must be a group name (no ":", newline or NUL) or a gid');
  let text = '';
  try {
    text = readFileSync('/etc/group', 'utf8');
  } catch {
    // no /etc/group (Android): the name is unknown
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length >= 3 && fields[0] === name && /^\d+$/.test(fields[2])) {
      const gid = Number(fields[2]);
      if (gid <= MAX_GID) return gid;
    }
  }
  throw invalidArgValue('options.group', name, 'is no group in /etc/group (pass the gid number instead)');
}

/** a Node fs error as the package's errno error */
function asErrno(err: unknown, path: string): unknown {
  const e = err as { code?: unknown; syscall?: unknown; errno?: unknown };
  if (typeof e?.code !== 'string' || typeof e.syscall !== 'string') return err;
  return new DmaHeapError(e.code, e.syscall, { path, ...(typeof e.errno === 'number' ? { errno: e.errno } : {}) });
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone: nothing to clean.
  }
}

/**
 * A listening AF_UNIX socket that hands each accepted connection, with its peer's credentials,
 * to `onConnection`. Keeps the event loop alive until close().
 *
 * - Before listen(): the file's group, then its mode (so no client connects under the umask's).
 * - Each accepted connection: the peer's credentials (SO_PEERCRED) are read, then it is closed at
 *   once if `maxConnections` are open or allow() does not return true (reported to
 *   `reports.refused`); otherwise `onConnection(fd, peer, done)` owns the fd.
 * - `done()` (idempotent) says that connection has ended: it stops counting against
 *   maxConnections, and accepting resumes at once if it waited for an fd.
 * - accept() failing for want of fds or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) stops accepting
 *   (clients wait in the backlog) until a done() or a delay of 10 ms doubling to 1 s; reported
 *   once per shortage to `reports.error`. At most 64 accepts per turn of the event loop.
 * - close() stops listening and removes the socket file; connections handed over stay open.
 *
 * Internal (lib/share/'s servers build on it); the options are the public ones of
 * DmaBufChannel.listen.
 */
export class Listener {
  /** where it listens (a leading NUL: the abstract namespace) */
  readonly path: string;
  readonly #sock: Sockets;
  readonly #options: Checked;
  readonly #onConnection: (fd: number, peer: PeerCredentials, done: () => void) => void;
  readonly #reports: ListenerReports;
  #fd: number;
  #poller: Poller | null;
  /** accepting paused for want of fds or memory: the retry timer, and the current delay */
  #retry: NodeJS.Timeout | null = null;
  #delay = 0;
  /** connections handed over whose done() has not been called */
  #open = 0;

  /**
   * Bind, set the file's group and mode, listen, and start accepting.
   *
   * @param sock the socket calls (socket.ts `sockets()`)
   * @param path where to bind: a filesystem path, or a leading NUL for the abstract namespace
   * @param socketType SOCK_SEQPACKET or SOCK_STREAM (socket.ts `socketType()`)
   * @param options `backlog`, `mode`, `group`, `allow`, `maxConnections` (their keys already
   * checked by validateOptions; the values are checked here)
   * @param onConnection gets each admitted connection: its fd (O_CLOEXEC, O_NONBLOCK; now the
   * callee's to close), the peer's credentials, and `done`, to call once it has closed it
   * @param reports optional: `refused(peer, reason, error?)` and `error(err)`
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad path or option
   * (a mode or group with an abstract path, an unknown group name); RangeError `ERR_OUT_OF_RANGE`.
   * @throws {@link DmaHeapError} socket's, bind's, lchown's, chmod's or listen's errno
   * (`EADDRINUSE`, `EACCES`, `EPERM`...): nothing is left open or bound then.
   * @example
   * ```ts
   * const sock = sockets();
   * const listener = new Listener(sock, '/tmp/x.sock', socketType('stream'), { mode: 0o660 }, (fd, peer, done) => {
   *   console.log('uid', peer.uid);
   *   closeAll(sock, [fd]);
   *   done();
   * });
   * listener.close();
   * ```
   */
  constructor(
    sock: Sockets,
    path: string,
    socketType: number,
    options: ListenOptions,
    onConnection: (fd: number, peer: PeerCredentials, done: () => void) => void,
    reports: ListenerReports = {},
  ) {
    validatePath(path);
    this.#options = checkListenOptions(path, options);
    this.#sock = sock;
    this.path = path;
    this.#onConnection = onConnection;
    this.#reports = reports;
    const fd = sock.socket(socketType);
    let bound = false;
    try {
      sock.bind(fd, path);
      bound = true;
      const { group, mode } = this.#options;
      try {
        if (group !== undefined) lchownSync(path, -1, group);
        if (mode !== undefined) chmodSync(path, mode);
      } catch (err) {
        throw asErrno(err, path);
      }
      sock.listen(fd, this.#options.backlog);
      this.#poller = this.#watch(fd);
    } catch (err) {
      closeAll(sock, [fd]);
      if (bound && path[0] !== '\0') unlinkQuietly(path);
      throw err;
    }
    this.#fd = fd;
  }

  /** whether close() ran */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** connections handed to onConnection whose done() has not been called yet */
  get connections(): number {
    return this.#open;
  }

  /**
   * Stop listening and remove the socket file (not an abstract name: it has none). Connections
   * already handed over stay open, and their done() may still be called. Idempotent.
   *
   * @throws Nothing: a second close() does nothing; a socket file already gone is no error.
   * @example
   * ```ts
   * listener.close();
   * listener.closed; // true
   * ```
   */
  close(): void {
    if (this.#fd < 0) return;
    this.#poller?.stop();
    this.#poller = null;
    if (this.#retry) clearTimeout(this.#retry);
    this.#retry = null;
    closeAll(this.#sock, [this.#fd]);
    this.#fd = -1;
    if (this.path[0] !== '\0') unlinkQuietly(this.path);
  }

  #watch(fd: number): Poller {
    return this.#sock.poll(fd, READABLE, (err) => this.#onReadable(err));
  }

  #report(err: unknown): void {
    this.#reports.error?.(err as Error);
  }

  #refuse(fd: number, peer: PeerCredentials, reason: RefusedConnectionReason, error?: unknown): void {
    closeAll(this.#sock, [fd]);
    if (error === undefined) this.#reports.refused?.(peer, reason);
    else this.#reports.refused?.(peer, reason, error);
  }

  #onReadable(err: Error | null): void {
    if (err) {
      this.#report(err);
      return;
    }
    for (let n = 0; n < ACCEPTS_PER_TURN && this.#fd >= 0 && this.#retry === null; n++) {
      let fd: number;
      try {
        fd = this.#sock.accept(this.#fd);
      } catch (e) {
        const code = (e as { code?: string }).code ?? '';
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        if (ONE_CLIENT.has(code)) continue;
        if (OUT_OF_RESOURCES.has(code)) this.#backOff(e);
        else this.#report(e);
        return;
      }
      this.#delay = 0;
      let peer: PeerCredentials;
      try {
        const c = this.#sock.peerCredentials(fd);
        peer = Object.freeze({ pid: c.pid, uid: c.uid, gid: c.gid });
      } catch (e) {
        closeAll(this.#sock, [fd]); // no credentials, no admission
        this.#report(e);
        continue;
      }
      if (this.#open >= this.#options.maxConnections) {
        this.#refuse(fd, peer, 'maxConnections');
        continue;
      }
      const allow = this.#options.allow;
      if (allow) {
        let verdict: unknown;
        try {
          verdict = allow(peer);
        } catch (e) {
          this.#refuse(fd, peer, 'allowThrew', e);
          continue;
        }
        if (verdict !== true) {
          this.#refuse(fd, peer, 'notAllowed');
          continue;
        }
        if (this.#fd < 0) {
          // allow() closed the listener: no one is there to take the connection
          closeAll(this.#sock, [fd]);
          return;
        }
      }
      this.#open++;
      let ended = false;
      const done = () => {
        if (ended) return;
        ended = true;
        this.#open--;
        this.#resume(); // an fd came free: if accepting waits for one, try now
      };
      this.#onConnection(fd, peer, done);
    }
  }

  /**
   * accept() found no fd (EMFILE, ENFILE) or no kernel memory: stop watching the socket (it
   * stays readable, and watching it would spin a core) until a connection ends, or a delay of
   * 10 ms doubling up to 1 s passes. Clients wait in the backlog meanwhile. Reported once per
   * shortage.
   */
  #backOff(err: unknown): void {
    this.#poller?.stop();
    this.#poller = null;
    if (this.#delay === 0) this.#report(err);
    this.#delay = Math.min(Math.max(this.#delay * 2, 10), 1000);
    this.#retry = setTimeout(() => this.#resume(), this.#delay);
  }

  #resume(): void {
    if (this.#retry === null || this.#fd < 0) return;
    clearTimeout(this.#retry);
    this.#retry = null;
    try {
      this.#poller = this.#watch(this.#fd);
    } catch (e) {
      this.#backOff(e);
    }
  }
}
