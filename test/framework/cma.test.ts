import { type CmaBuffer, DEFAULT_CMA_SIZE, type Framework } from '../../lib/framework';
import { CMA_ALIGNMENT, getOrder } from '../../lib/framework/heaps/cma';
import { allocFrom, checkNoFdLeaks, eachBacking, fdinfoField, thrown } from './helpers';

checkNoFdLeaks();

const region = (fw: Framework, fd: number) => fw.kernel.dmaBuf(fd)?.priv as CmaBuffer;

eachBacking((make) => {
  test('the default region is 64 MiB, shared by default_cma_region and reserved', () => {
    const fw = make();
    expect(fw.cma?.size).toBe(DEFAULT_CMA_SIZE);
    expect(fw.cma?.name).toBe('reserved');
    const a = allocFrom(fw, 'default_cma_region', fw.pageSize);
    const b = allocFrom(fw, 'reserved', fw.pageSize);
    expect(region(fw, a).offset).toBe(0);
    expect(region(fw, b).offset).toBe(fw.pageSize); // same bitmap
    expect(fdinfoField(fw, a, 'exp_name')).toBe('default_cma_region');
    expect(fdinfoField(fw, b, 'exp_name')).toBe('reserved');
    expect(fw.cma?.used).toBe(2);
    fw.kernel.close(a);
    fw.kernel.close(b);
    expect(fw.cma?.used).toBe(0);
  });

  test('alignment: min(get_order(size), CONFIG_CMA_ALIGNMENT) pages, first fit', () => {
    const fw = make();
    const p = fw.pageSize;
    const one = allocFrom(fw, 'reserved', p); // pages [0]
    const three = allocFrom(fw, 'reserved', 3 * p); // order 2: aligned to 4 pages → [4..6]
    const single = allocFrom(fw, 'reserved', p); // first fit: page 1
    const big = allocFrom(fw, 'reserved', 256 * p); // order 8 → aligned to 256 pages
    const huge = allocFrom(fw, 'reserved', 1024 * p); // order 10, capped at 8 → 256-page aligned, not 1024
    expect([one, three, single, big, huge].map((fd) => region(fw, fd).pageno)).toEqual([0, 4, 1, 256, 512]);
    expect(region(fw, huge).offset).toBe(512 * p);
    expect(region(fw, huge).physAddr).toBe((fw.cma?.base ?? NaN) + 512 * p);
    expect(getOrder(1024 * p, p)).toBe(10);
    expect(CMA_ALIGNMENT).toBe(8);
    for (const fd of [one, three, single, big, huge]) fw.kernel.close(fd);
  });

  test('fragmentation: ENOMEM without a free aligned run, even with enough pages free in total', () => {
    const fw = make({ cma: { size: 16 * 4096 * 4 } }); // 16 pages at 16 KiB, 64 at 4 KiB
    const p = fw.pageSize;
    const pages = (fw.cma?.count ?? 0);
    const fds = Array.from({ length: pages }, () => allocFrom(fw, 'reserved', p));
    expect(thrown(() => allocFrom(fw, 'reserved', p))).toMatchObject({ code: 'ENOMEM', syscall: 'ioctl', heap: 'reserved' });
    for (let i = 0; i < pages; i += 2) fw.kernel.close(fds[i]); // every other page free: half the region
    expect(fw.cma?.used).toBe(pages / 2);
    const fragmented = thrown(() => allocFrom(fw, 'reserved', 2 * p));
    expect(fragmented.code).toBe('ENOMEM');
    // says why: the region's size, what is free, and that no free run is long enough
    expect(fragmented.message).toContain(`${2 * p} bytes asked, the CMA region has ${pages * p} bytes (${(pages / 2) * p} free, largest free run ${p})`);
    fw.kernel.close(fds[1]); // pages 0..1 free, aligned for order 1
    const two = allocFrom(fw, 'reserved', 2 * p);
    expect(region(fw, two).pageno).toBe(0);
    fw.kernel.close(two);
    for (let i = 3; i < pages; i += 2) fw.kernel.close(fds[i]);
  });

  test('freed ranges are reused, and come back zeroed', () => {
    const fw = make();
    const size = 1024 * 1024;
    for (let i = 0; i < 32; i++) {
      const fd = allocFrom(fw, 'default_cma_region', size);
      expect(region(fw, fd).offset).toBe(0);
      const view = fw.kernel.mmap(fd, size, 0, true);
      expect(view.every((b) => b === 0)).toBe(true);
      view.fill(0xee);
      fw.kernel.munmap(view);
      fw.kernel.close(fd);
    }
  });

  test('the region size option bounds what can be allocated', () => {
    const fw = make({ cma: { size: 1024 * 1024 } });
    expect(fw.cma?.size).toBe(1024 * 1024);
    expect(thrown(() => allocFrom(fw, 'reserved', 1024 * 1024 + 1))).toMatchObject({
      code: 'ENOMEM',
      message: expect.stringContaining('the CMA region has 1048576 bytes (1048576 free, largest free run 1048576)'),
    });
    const all = allocFrom(fw, 'reserved', 1024 * 1024);
    expect(thrown(() => allocFrom(fw, 'default_cma_region', 1)).code).toBe('ENOMEM');
    expect(thrown(() => allocFrom(fw, 'reserved', 1n << 62n)).code).toBe('ENOMEM');
    fw.kernel.close(all);
    expect(fw.faults.bytesInUse('reserved')).toBe(0);
  });

  test('a mapping keeps its range allocated after the fd closes', () => {
    const fw = make();
    const fd = allocFrom(fw, 'reserved', fw.pageSize);
    const view = fw.kernel.mmap(fd, fw.pageSize, 0, true);
    fw.kernel.close(fd);
    expect(fw.cma?.used).toBe(1);
    fw.kernel.munmap(view);
    expect(fw.cma?.used).toBe(0);
  });
});
