/**
 * Issue 18, item 4: the three fromFds refuse an fd of the wrong kind with one error shape —
 * a DmaHeapError whose code is what the real kernel says when handed that fd (EINVAL for a
 * dma-buf or sync_file, ENOTSOCK for a socket), a message naming what the fd is — and leave
 * the caller's fd open. They threw a DmaBufStateError, a DmaHeapError and a TypeError.
 * DmaBufChannel needs the addon; the other two run in both modes.
 */
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
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
