/**
 * src/memfd.cc: memfdBuffer, the software heap's one-crossing allocation (memfd_create,
 * ftruncate, F_ADD_SEALS), and udmabufBuffer, the udmabuf tier's (the same, UDMABUF_CREATE, close).
 */
import fs from 'node:fs';
import { O_CLOEXEC, O_RDWR } from '../../lib/uapi';
import { testWith } from '../helpers/expect';
import { A, addonSuite, fdCount, fdFlags, O_CLOEXEC_OCTAL, page } from './helpers';

const F_SEAL_SHRINK = 2;

addonSuite('addon: memfd', () => {
  test('memfdBuffer makes a sealed memfd of the size asked, O_CLOEXEC, in one call', () => {
    const fd = A.memfdBuffer('dma-heap:fast', 3 * page, F_SEAL_SHRINK);
    try {
      expect(fs.fstatSync(fd).size).toBe(3 * page);
      expect(A.getSeals(fd) & F_SEAL_SHRINK).toBe(F_SEAL_SHRINK);
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/memfd:dma-heap:fast/);
      expect(fdFlags(fd) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
    } finally {
      A.close(fd);
    }
  });

  test('memfdBuffer failures are errno errors naming the syscall, and leave no fd', () => {
    const before = fdCount();
    expect(() => A.memfdBuffer('x', page, 0x7fff0000)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'fcntl' }));
    expect(() => A.memfdBuffer('x', -1, 0)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(fdCount()).toBe(before);
  });

  test('udmabufBuffer on an fd that is not /dev/udmabuf: ENOTTY from the ioctl, and its memfd is closed', () => {
    const notUdmabuf = A.memfdBuffer('not-udmabuf', page, 0);
    const before = fdCount();
    try {
      expect(() => A.udmabufBuffer(notUdmabuf, 'x', page, true)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl' }));
      expect(() => A.udmabufBuffer(notUdmabuf, 'x', -1, true)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
      expect(fdCount()).toBe(before);
    } finally {
      A.close(notUdmabuf);
    }
  });

  testWith('udmabuf')('udmabufBuffer makes a udmabuf dma-buf of the size asked, O_CLOEXEC as asked, and closes its memfd', () => {
    const dev = A.open('/dev/udmabuf', O_RDWR | O_CLOEXEC);
    const before = fdCount();
    const fds = [A.udmabufBuffer(dev, 'dma-heap:udmabuf', 2 * page, true), A.udmabufBuffer(dev, 'dma-heap:udmabuf', page, false)];
    try {
      expect(fdCount()).toBe(before + 2); // no memfd left open
      const info = fs.readFileSync(`/proc/self/fdinfo/${fds[0]}`, 'utf8');
      expect(info).toMatch(/^exp_name:\s*udmabuf$/m);
      expect(info).toMatch(new RegExp(`^size:\\s*${2 * page}$`, 'm'));
      expect(fdFlags(fds[0]) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
      expect(fdFlags(fds[1]) & O_CLOEXEC_OCTAL).toBe(0);
    } finally {
      fds.forEach((fd) => A.close(fd));
      A.close(dev);
    }
  });
});
