/** src/fd_passing.cc: AF_UNIX sockets and SCM_RIGHTS. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { A, addonSuite, fdCount, fdFlags, memfd, O_CLOEXEC_OCTAL, page, scratchDir, thrown, tick } from './helpers';

const tmp = scratchDir();

addonSuite('addon: fd_passing', () => {
  describe('(i) AF_UNIX fd passing', () => {
    test.each([
      ['SOCK_SEQPACKET', () => A.abi.SOCK_SEQPACKET],
      ['SOCK_STREAM', () => A.abi.SOCK_STREAM],
    ])('%s: 3 memfds and a payload arrive CLOEXEC, same inodes', (_label, type) => {
      const [a, b] = A.socketpair(type());
      for (const s of [a, b]) expect(fdFlags(s) & (O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK)).toBe(O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK);
      const sent = [memfd(page), memfd(page), memfd(page)].map((m) => m.fd);
      expect(A.sendFds(a, Buffer.from('hello'), sent)).toBe(5);
      const msg = A.recvFds(b, 64, 8);
      expect(msg).toMatchObject({ truncated: false, controlTruncated: false, foreignControl: false, eof: false });
      expect(Buffer.from(msg.payload).toString()).toBe('hello');
      expect(msg.fds).toHaveLength(3);
      msg.fds.forEach((fd, i) => {
        expect(fd).not.toBe(sent[i]);
        expect(fdFlags(fd) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
        expect(fs.fstatSync(fd).ino).toBe(fs.fstatSync(sent[i]).ino);
      });
      [...sent, ...msg.fds, a, b].forEach((fd) => A.close(fd));
    });

    test('maxFds too small: controlTruncated, and the fds that did arrive are returned', () => {
      const before = fdCount();
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      const sent = [memfd(page), memfd(page), memfd(page)].map((m) => m.fd);
      A.sendFds(a, new Uint8Array([1]), sent);
      const msg = A.recvFds(b, 64, 1);
      expect(msg.controlTruncated).toBe(true);
      expect(msg.fds.length).toBeGreaterThanOrEqual(1); // the cmsg buffer rounds up: maybe 2
      expect(msg.fds.length).toBeLessThan(3);
      [...sent, ...msg.fds, a, b].forEach((fd) => A.close(fd));
      expect(fdCount()).toBe(before);
    });

    test('SEQPACKET: a longer payload is truncated; no fds at all is fine', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      A.sendFds(a, Buffer.from('0123456789'), []);
      const msg = A.recvFds(b, 4, 0);
      expect(msg).toMatchObject({ truncated: true, fds: [], eof: false });
      expect(Buffer.from(msg.payload).toString()).toBe('0123');
      A.close(a);
      A.close(b);
    });

    test('nothing to read: EAGAIN; a closed stream peer: eof', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      expect(thrown(() => A.recvFds(b, 16, 4))).toMatchObject({ code: 'EAGAIN', errno: -os.constants.errno.EAGAIN, syscall: 'recvmsg' });
      A.close(a);
      const msg = A.recvFds(b, 16, 4);
      expect(msg).toMatchObject({ eof: true, fds: [] });
      expect(msg.payload.length).toBe(0);
      expect(thrown(() => A.sendFds(b, new Uint8Array(1), []))).toMatchObject({ code: 'EPIPE', syscall: 'sendmsg' });
      A.close(b);
    });

    test('bind/listen/accept/connect over a path in a temp dir', () => {
      const where = path.join(tmp, 'sock');
      const server = A.socket(A.abi.SOCK_SEQPACKET);
      A.bind(server, where);
      A.listen(server, 4);
      expect(thrown(() => A.accept(server))).toMatchObject({ code: 'EAGAIN', syscall: 'accept' });
      const client = A.socket(A.abi.SOCK_SEQPACKET);
      A.connect(client, where);
      const conn = A.accept(server);
      expect(fdFlags(conn) & (O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK)).toBe(O_CLOEXEC_OCTAL | fs.constants.O_NONBLOCK);
      const { fd } = memfd(page);
      A.sendFds(client, new Uint8Array([7]), [fd]);
      const msg = A.recvFds(conn, 8, 2);
      expect(msg.fds).toHaveLength(1);
      expect(fs.fstatSync(msg.fds[0]).ino).toBe(fs.fstatSync(fd).ino);
      const second = A.socket(A.abi.SOCK_STREAM);
      expect(thrown(() => A.bind(second, where))).toMatchObject({ code: 'EADDRINUSE', syscall: 'bind', path: where });
      A.close(second);
      expect(thrown(() => A.connect(client, path.join(tmp, 'nobody')))).toMatchObject({ syscall: 'connect' });
      expect(thrown(() => A.bind(server, `/${'x'.repeat(200)}`))).toMatchObject({ code: 'ENAMETOOLONG', syscall: 'bind' });
      [fd, ...msg.fds, conn, client, server].forEach((f) => A.close(f));
    });

    test('abstract names (leading NUL) work too', () => {
      const name = `\0dma-heap-test-${process.pid}`;
      const server = A.socket(A.abi.SOCK_STREAM);
      A.bind(server, name);
      A.listen(server, 1);
      const client = A.socket(A.abi.SOCK_STREAM);
      A.connect(client, name);
      const conn = A.accept(server);
      [conn, client, server].forEach((f) => A.close(f));
    });

    test('peerCredentials: SO_PEERCRED of both ends; errno errors as the other calls', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      const me = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
      expect(A.peerCredentials(a)).toEqual(me);
      expect(A.peerCredentials(b)).toEqual(me);
      [a, b].forEach((f) => A.close(f));
      const fd = fs.openSync('/dev/null', 'r');
      expect(thrown(() => A.peerCredentials(fd))).toMatchObject({ code: 'ENOTSOCK', syscall: 'getsockopt' });
      fs.closeSync(fd);
      expect(thrown(() => A.peerCredentials(-1))).toMatchObject({ code: 'EBADF', syscall: 'getsockopt' });
      expect(thrown(() => A.peerCredentials('3' as never))).toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    });

    test('poll fires readable when data arrives; stop() prevents further callbacks', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_SEQPACKET);
      const seen: Array<[unknown, number]> = [];
      let fired!: () => void;
      const first = new Promise<void>((r) => (fired = r));
      const poller = A.poll(b, 1, (err, events) => {
        seen.push([err, events]);
        fired();
      });
      await tick();
      expect(seen).toEqual([]);
      A.sendFds(a, new Uint8Array([1]), []);
      await first;
      expect(seen[0]).toEqual([null, 1]);
      poller.stop();
      poller.stop(); // idempotent
      const count = seen.length;
      A.sendFds(a, new Uint8Array([2]), []); // level-triggered: would fire again and again
      for (let i = 0; i < 5; i++) await tick();
      await new Promise((r) => setTimeout(r, 20));
      expect(seen.length).toBe(count);
      A.close(a);
      A.close(b);
    });

    test('poll: stop() from inside the callback; writable; bad fd', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      let calls = 0;
      await new Promise<void>((resolve) => {
        const p = A.poll(a, 2, (err, events) => {
          calls++;
          expect(err).toBeNull();
          expect(events & 2).toBe(2);
          p.stop();
          resolve();
        });
      });
      for (let i = 0; i < 5; i++) await tick();
      expect(calls).toBe(1);
      expect(thrown(() => A.poll(-1, 1, () => {}))).toMatchObject({ code: 'EBADF', syscall: 'poll' });
      A.close(a);
      A.close(b);
    });
  });
});
