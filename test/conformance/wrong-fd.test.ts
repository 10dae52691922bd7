/**
 * Issue 18, item 4: the three fromFds refuse an fd of the wrong kind with one error shape —
 * a DmaHeapError whose code is what the real kernel says when handed that fd (EINVAL for a
 * dma-buf or sync_file, ENOTSOCK for a socket), a message naming what the fd is — and leave
 * the caller's fd open. They threw a DmaBufStateError, a DmaHeapError and a TypeError.
 * DmaBufChannel needs the addon; the other two run in both modes.
 */
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import net from 'node:net';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { addonStatus, DmaBufChannel, DmaHeapError, fromFd, openHeap, SyncFile } from '../../lib';
import { Framework } from '../../lib/framework';
import { fdTarget, newFds, openFds } from '../helpers/fds';
import { testIf } from '../helpers/skip';

const withAddon = addonStatus().loaded;

const fromFds: [string, 'EINVAL' | 'ENOTSOCK', string, (fd: number) => unknown][] = [
  ['DmaBuf.fromFd', 'EINVAL', 'dma-buf', (fd) => fromFd(fd)],
  ['SyncFile.fromFd', 'EINVAL', 'sync_file', (fd) => SyncFile.fromFd(fd)],
  ...(withAddon ? [['DmaBufChannel.fromFd', 'ENOTSOCK', 'socket', (fd: number) => DmaBufChannel.fromFd(fd)] as [string, 'ENOTSOCK', string, (fd: number) => unknown]] : []),
];

if (!withAddon) testIf(false, 'needs the native addon')('DmaBufChannel.fromFd', () => undefined);

let fw: Framework;
let file: number;
let server: net.Server;
let dir: string;
beforeAll(async () => {
  fw = new Framework();
  file = openSync(__filename, 'r');
  server = net.createServer();
  // a Unix socket: the self-built kernels have no IPv4 (EAFNOSUPPORT)
  dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-wrong-fd-'));
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path.join(dir, 's'), resolve));
});
afterAll(() => {
  closeSync(file);
  server.close();
  rmSync(dir, { recursive: true, force: true });
  fw.dispose();
});

/** the error `fn` throws */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('nothing was thrown');
}

test.each(fromFds)(`%s: a regular file is refused as the kernel would (%s), the caller's fd left open`, (_, code, kind, adopt) => {
  const before = openFds();
  const err = thrown(() => adopt(file));
  expect(err).toBeInstanceOf(DmaHeapError);
  expect(err).toMatchObject({ code, errno: -constants.errno[code], message: `${code}: fd ${file} is a regular file, not a ${kind}, ${(err as DmaHeapError).syscall}` });
  expect(newFds(before)).toEqual([]);
  expect(fdTarget(file)).toBe(__filename);
});

test('side by side: the same shape from each, for each kind of fd it does not take', () => {
  using buf = openHeap('system', { framework: fw }).alloc(4096);
  const socket = (server as unknown as { _handle: { fd: number } })._handle.fd;
  const wrong: Record<string, number[]> = { 'dma-buf': [file, socket], sync_file: [file, socket, buf.fd], socket: [file, buf.fd] };
  for (const [, code, kind, adopt] of fromFds) {
    for (const fd of wrong[kind]) {
      const err = thrown(() => adopt(fd)) as DmaHeapError;
      expect({ name: err.name, code: err.code, message: err.message.replace(/fd \d+ is .*, not/, 'fd N is X, not') }).toEqual({
        name: 'DmaHeapError',
        code,
        message: `${code}: fd N is X, not a ${kind}, ${err.syscall}`,
      });
    }
  }
});

test.each(fromFds)('%s: a closed fd is a DmaHeapError EBADF (syscall fstat) naming the fd, as from the other two', (_, _code, _kind, adopt) => {
  const fd = openSync(__filename, 'r');
  closeSync(fd);
  const err = thrown(() => adopt(fd));
  expect(err).toBeInstanceOf(DmaHeapError);
  expect(err).toMatchObject({ code: 'EBADF', syscall: 'fstat', message: expect.stringContaining(`fd ${fd} is not open`) });
});

// DmaBufChannel.fromFd closed the caller's fd whatever it was asked: a caller that adopted a
// live channel's fd (or kept using its own) then held a number the next open reused.
testIf(withAddon, 'sockets need the native addon')('all three: dup (default true) leaves the caller\'s fd open and theirs; dup: false takes it', async () => {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const addon = (require('../../lib/native/load') as typeof import('../../lib/native/load')).loadAddon()!;
  const isOpen = (fd: number) => {
    try {
      return fstatSync(fd) !== undefined;
    } catch {
      return false;
    }
  };
  const heap = openHeap('system', { framework: fw });
  try {
    const [a, b] = addon.socketpair(addon.abi.SOCK_SEQPACKET);
    const kept = DmaBufChannel.fromFd(a);
    const taken = DmaBufChannel.fromFd(b, { dup: false });
    expect([isOpen(a), isOpen(b)]).toEqual([true, false]);
    const buf = heap.alloc(4096);
    await kept.send([buf], { n: 1 });
    const got = await taken.receive();
    expect(got.payload).toEqual({ n: 1 });
    got.buffers.forEach((x) => x.close());
    kept.close();
    taken.close();
    expect(isOpen(a)).toBe(true); // still the caller's to close
    closeSync(a);
    const adopted = fromFd(buf.fd); // DmaBuf.fromFd: the same default
    adopted.close();
    expect(isOpen(buf.fd)).toBe(true);
    const sf = buf.exportSyncFile('read');
    SyncFile.fromFd(sf.fd, { framework: fw }).close(); // SyncFile.fromFd: the same default
    expect(isOpen(sf.fd)).toBe(true);
    sf.close();
    buf.close();
  } finally {
    heap.close();
  }
});
