/** src/errors.cc and src/args.h: errno failures and argument checks. */
import os from 'node:os';
import path from 'node:path';
import { A, addonSuite, FIONREAD, memfd, page, scratchDir, thrown } from './helpers';

const tmp = scratchDir();

addonSuite('addon: errors', () => {
  describe('(b) errors', () => {
    test('close(-1): EBADF, errno -9, syscall close, Node’s message shape', () => {
      expect(thrown(() => A.close(-1))).toMatchObject({
        code: 'EBADF',
        errno: -os.constants.errno.EBADF,
        syscall: 'close',
        message: 'EBADF: bad file descriptor, close',
      });
      expect(os.constants.errno.EBADF).toBe(9);
    });

    test('closing a closed fd: EBADF', () => {
      const { fd } = memfd(0);
      A.close(fd);
      expect(thrown(() => A.close(fd))).toMatchObject({ code: 'EBADF', errno: -9, syscall: 'close' });
    });

    test('open of a missing path: ENOENT with syscall open and the path', () => {
      const p = path.join(tmp, 'missing');
      expect(thrown(() => A.open(p, A.abi.O_RDONLY | A.abi.O_CLOEXEC))).toMatchObject({
        code: 'ENOENT',
        errno: -os.constants.errno.ENOENT,
        syscall: 'open',
        path: p,
      });
    });

    test('non-integers where memory safety needs integers: ERR_OUT_OF_RANGE (as Node says for fs.closeSync(1.5)); non-numbers: TypeError', () => {
      const { fd } = memfd(page);
      expect(thrown(() => A.close(1.5))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(thrown(() => A.close('3' as never))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(thrown(() => A.mmap(fd, -1, 0, true))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(thrown(() => A.mmap(fd, page, 0.5, true))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(thrown(() => A.readMapped(fd, 0, [1, 2] as unknown as Uint8Array))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => A.ioctl(fd, FIONREAD, new Uint16Array(2) as unknown as Uint8Array))).toMatchObject({
        name: 'TypeError',
      });
      A.close(fd);
    });
  });
});
