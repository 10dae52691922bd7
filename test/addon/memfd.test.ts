/** src/memfd.cc: memfdBuffer, the software heap's one-crossing allocation (memfd_create, ftruncate, F_ADD_SEALS). */
import fs from 'node:fs';
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
});
