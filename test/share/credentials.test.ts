/**
 * Who may connect (issue 20 item 5): every channel knows its peer (SO_PEERCRED), a server sets
 * its socket file's mode and group before anyone can connect, refuses whom allow() refuses and
 * what is beyond maxConnections (a 'refusedConnection', never a crash or a leak).
 *
 * Children run as uid/gid 65534 (nobody/nogroup): they connect (or listen) with Node's own `net`
 * on a stream socket, so they need nothing of this package. We are root: root's own connect
 * passes any mode, a child's does not.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DmaBufChannel, type DmaBufServer, type PeerCredentials, type RefusedConnectionReason } from '../../lib/share';
import { settledFds, newFds, tick } from '../helpers/fds';
import { describeIf } from '../helpers/skip';
import { canShare, DIST, requireDist, warmUpSpawn } from './helpers';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

let dir: string;
let n = 0;
const sockPath = (tag: string) => path.join(dir, `${tag}-${n++}.sock`);
const abstractName = (tag: string) => `\0dma-heap-cred-${process.pid}-${tag}-${n++}`;

/** a node child as nobody, its stdout lines as they come */
function asNobody(code: string, args: string[]): { child: ChildProcess; line: () => Promise<string>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['-e', code, ...args], { uid: NOBODY, gid: NOBODY, cwd: '/', stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const exit = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return {
    child,
    exit,
    line: async () => {
      const r = await lines.next();
      if (r.done) throw new Error('the child exited without reporting');
      return r.value;
    },
  };
}

/** connects to argv[1] (JSON: an abstract name has a NUL) with net (stream), prints 'connected' or the error's code, then waits for the server's end */
const CONNECT = `
const s = require('net').connect(JSON.parse(process.argv[1]));
s.on('connect', () => console.log('connected'));
s.on('error', (e) => { console.log(e.code); process.exit(0); });
s.on('close', () => process.exit(0));
s.resume();
`;

/**
 * The same with this package (dist/, as other children): Node's net pads an abstract name to
 * the whole sun_path (108 bytes), so it can't reach one bound at its exact length, as this
 * package, systemd and Android's libcutils do.
 */
const CONNECT_PACKAGE = `
const { DmaBufChannel } = require(process.argv[2]);
let c;
try { c = DmaBufChannel.connect(JSON.parse(process.argv[1]), { type: 'stream' }); } catch (e) { console.log(e.code); process.exit(0); }
console.log('connected');
c.receive().catch(() => process.exit(0));
`;

const nextConnection = <R, S>(server: DmaBufServer<R, S>) => once(server, 'connection').then(([c]) => c as DmaBufChannel<R, S>);
const closedWith = (reason: string) => expect.objectContaining({ code: 'ERR_DMA_HEAP_CHANNEL_CLOSED', reason });

describeIf(canShare && isRoot, 'needs the native addon and root (children run as uid 65534)')('who may connect', () => {
  beforeAll(async () => {
    requireDist();
    await warmUpSpawn();
    dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-cred-'));
    chmodSync(dir, 0o755); // nobody may reach the sockets; the socket file's own mode decides
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a server's channel.peer is the connecting child's real pid, uid and gid", async () => {
    using server = DmaBufChannel.listen(sockPath('peer'), { type: 'stream', mode: 0o666 });
    const accepted = nextConnection(server);
    const kid = asNobody(CONNECT, [JSON.stringify(server.path)]);
    expect(await kid.line()).toBe('connected');
    const channel = await accepted;
    expect(channel.peer).toEqual({ pid: kid.child.pid, uid: NOBODY, gid: NOBODY });
    expect(Object.isFrozen(channel.peer)).toBe(true);
    channel.close();
    await kid.exit;
  });

  test("a client's channel.peer is the server's: a child listening as nobody", async () => {
    const sub = mkdtempSync(path.join(dir, 'nobody-'));
    chownSync(sub, NOBODY, NOBODY);
    const p = path.join(sub, 'server.sock');
    const kid = asNobody(
      `const srv = require('net').createServer((c) => c.on('close', () => srv.close())).listen(process.argv[1], () => console.log('listening'));`,
      [p],
    );
    expect(await kid.line()).toBe('listening');
    using client = DmaBufChannel.connect(p, { type: 'stream' });
    expect(client.peer).toEqual({ pid: kid.child.pid, uid: NOBODY, gid: NOBODY });
    // a client that checks before it sends: not the uid it expected, so it hangs up
    expect(client.peer.uid === 0).toBe(false);
    client.close();
    expect(await kid.exit).toBe(0);
  });

  test('pair() and fromFd(): the peer is the process that made the pair', () => {
    const [a, b] = DmaBufChannel.pair();
    using _a = a;
    using _b = b;
    const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    expect(a.peer).toEqual(me);
    expect(b.peer).toEqual(me);
    using adopted = DmaBufChannel.fromFd(a.fd);
    expect(adopted.peer).toEqual(me);
  });

  test("mode 0o600: nobody's connect fails with EACCES, root's own works; set before anyone could connect", async () => {
    using server = DmaBufChannel.listen(sockPath('mode'), { type: 'stream', mode: 0o600 });
    expect(statSync(server.path).mode & 0o7777).toBe(0o600);
    const kid = asNobody(CONNECT, [JSON.stringify(server.path)]);
    let accepted = 0;
    server.on('connection', (c) => {
      accepted++;
      c.close();
    });
    expect(await kid.line()).toBe('EACCES');
    await kid.exit;
    using mine = DmaBufChannel.connect(server.path, { type: 'stream' });
    expect(mine.peer.pid).toBe(process.pid);
    await expect(mine.receive()).rejects.toEqual(closedWith('peerClosed'));
    expect(accepted).toBe(1); // root's, and only root's
  });

  test("mode 0o666: nobody may connect (the mode is what decides, not bind's umask)", async () => {
    const old = process.umask(0o077);
    let server: DmaBufServer;
    try {
      server = DmaBufChannel.listen(sockPath('mode-open'), { type: 'stream', mode: 0o666 });
    } finally {
      process.umask(old);
    }
    using _s = server;
    expect(statSync(server.path).mode & 0o777).toBe(0o666);
    const accepted = nextConnection(server);
    const kid = asNobody(CONNECT, [JSON.stringify(server.path)]);
    expect(await kid.line()).toBe('connected');
    const channel = await accepted;
    expect(channel.peer.uid).toBe(NOBODY);
    channel.close();
    await kid.exit;
  });

  test("group: a gid or a name from /etc/group sets the socket file's group; an unknown name is refused", () => {
    {
      using server = DmaBufChannel.listen(sockPath('gid'), { group: NOBODY, mode: 0o660 });
      expect(statSync(server.path)).toMatchObject({ gid: NOBODY, uid: 0 });
      expect(statSync(server.path).mode & 0o777).toBe(0o660);
    }
    const entry = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f.length >= 3 && f[0] && Number(f[2]) > 0);
    expect(entry).toBeDefined();
    {
      using server = DmaBufChannel.listen(sockPath('group-name'), { group: entry![0] });
      expect(statSync(server.path).gid).toBe(Number(entry![2]));
    }
    const p = sockPath('no-group');
    expect(() => DmaBufChannel.listen(p, { group: 'no-such-group-here' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('/etc/group') }));
    expect(() => statSync(p)).toThrow(); // nothing was bound
  });

  test('mode or group with an abstract path: ERR_INVALID_ARG_VALUE before anything is bound; allow() works there', async () => {
    const name = abstractName('mode');
    for (const options of [{ mode: 0o600 }, { group: NOBODY }, { group: 'root' }]) {
      expect(() => DmaBufChannel.listen(name, options)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('abstract') }));
    }
    // the name is free: nothing was bound by the refused calls
    const seen: PeerCredentials[] = [];
    using server = DmaBufChannel.listen(name, { type: 'stream', allow: (peer) => (seen.push(peer), peer.uid === NOBODY) });
    const accepted = nextConnection(server);
    const kid = asNobody(CONNECT_PACKAGE, [JSON.stringify(name), DIST]);
    expect(await kid.line()).toBe('connected');
    const channel = await accepted;
    expect(channel.peer).toEqual({ pid: kid.child.pid, uid: NOBODY, gid: NOBODY });
    expect(seen).toEqual([channel.peer]);
    channel.close();
    await kid.exit;
  });

  test("allow() false: the client sees the connection closed, the app never sees it, no fd leaks", async () => {
    const before = await settledFds();
    const server = DmaBufChannel.listen(sockPath('deny'), { allow: (peer) => peer.uid !== 0 });
    const refused: [PeerCredentials, RefusedConnectionReason, unknown][] = [];
    server.on('refusedConnection', (...args) => refused.push(args as never));
    server.on('connection', () => {
      throw new Error('a refused client reached the app');
    });
    for (let i = 0; i < 3; i++) {
      const client = DmaBufChannel.connect(server.path);
      await expect(client.receive()).rejects.toEqual(closedWith('peerClosed'));
      client.close();
    }
    expect(refused).toEqual(Array(3).fill([{ pid: process.pid, uid: 0, gid: 0 }, 'notAllowed']));
    expect(server.connections).toBe(0);
    server.close();
    await once(server, 'close');
    await tick();
    expect(newFds(before)).toEqual([]);
  });

  test('allow() throwing refuses too (the error comes with the event) and crashes nothing; the next client is admitted', async () => {
    const before = await settledFds();
    const boom = new Error('policy bug');
    let calls = 0;
    const server = DmaBufChannel.listen(sockPath('throw'), {
      allow: () => {
        if (calls++ === 0) throw boom;
        return true;
      },
    });
    const refused = once(server, 'refusedConnection');
    const first = DmaBufChannel.connect(server.path);
    expect(await refused).toEqual([{ pid: process.pid, uid: 0, gid: 0 }, 'allowThrew', boom]);
    await expect(first.receive()).rejects.toEqual(closedWith('peerClosed'));
    first.close();
    const second = DmaBufChannel.connect(server.path);
    const accepted = await nextConnection(server);
    await second.send([], 'hi');
    expect((await accepted.receive()).payload).toBe('hi');
    second.close();
    accepted.close();
    // allow() returning something else than true (a truthy value, a promise) refuses
    const server2 = DmaBufChannel.listen(sockPath('truthy'), { allow: (() => 1) as never });
    const refused2 = once(server2, 'refusedConnection');
    const third = DmaBufChannel.connect(server2.path);
    expect((await refused2)[1]).toBe('notAllowed');
    third.close();
    for (const s of [server, server2]) {
      s.close();
      await once(s, 'close');
    }
    await tick();
    expect(newFds(before)).toEqual([]);
  });

  test('maxConnections under a flood of 200 connects: each refused at once, the connected client carries on, a freed slot admits again', async () => {
    const before = await settledFds();
    const server = DmaBufChannel.listen<string>(sockPath('flood'), { maxConnections: 1 });
    const reasons = new Map<string, number>();
    server.on('refusedConnection', (_peer, reason) => reasons.set(reason, (reasons.get(reason) ?? 0) + 1));
    const settled = new Promise<void>((resolve) => server.on('refusedConnection', () => reasons.get('maxConnections') === 200 && resolve()));
    const client = DmaBufChannel.connect<string>(server.path);
    const accepted = await nextConnection(server);
    expect(server.connections).toBe(1);
    let extra = 0;
    server.on('connection', (c) => {
      extra++;
      c.close();
    });

    const flood = Array.from({ length: 200 }, () => DmaBufChannel.connect(server.path));
    // the first client is served while the flood is refused
    await client.send([], 'during');
    expect((await accepted.receive()).payload).toBe('during');
    await settled;
    expect(Object.fromEntries(reasons)).toEqual({ maxConnections: 200 });
    expect(extra).toBe(0);
    for (const f of flood) await expect(f.receive()).rejects.toEqual(closedWith('peerClosed'));
    flood.forEach((f) => f.close());
    await accepted.send([], 'after');
    expect((await client.receive()).payload).toBe('after');

    // its slot freed, the next one is admitted
    accepted.close();
    await once(accepted, 'close');
    expect(server.connections).toBe(0);
    const next = DmaBufChannel.connect(server.path);
    await new Promise<void>((resolve) => server.once('connection', () => resolve()));
    expect(extra).toBe(1);
    next.close();
    client.close();
    server.close();
    await once(server, 'close');
    await tick();
    expect(newFds(before)).toEqual([]);
  });
});
