// The kernel row's promises (DMA_HEAP_EXPECT, set by the VM rig per row): every capability the row
// declares is really there, so a kernel built without a device fails here even when no other test
// of this run happens to use it. Off the rig (nothing declared) only the helper's own rules run.
import * as os from 'node:os';
import { readFileSync } from 'node:fs';
import { declaredCapabilities, expectedValue, expects, missing } from '../helpers/expect';

const KNOWN = ['system', 'udmabuf', 'cma', 'cma-alias', 'vgem', 'vivid', 'vivid-contig', 'sw_sync', 'compat32', 'cma-regions', 'mem-accounting', 'heap-module', 'pagesize'];

test('DMA_HEAP_EXPECT names only capabilities the helper knows (a typo must not pass silently)', () => {
  const unknown = declaredCapabilities().map((c) => c.split('=')[0]).filter((c) => !KNOWN.includes(c));
  expect(unknown).toEqual([]);
});

test('an undeclared capability is not expected, and an unknown one is never present', () => {
  expect(expects('no-such-capability')).toBe(false);
  expect(missing('no-such-capability')).toMatch(/unknown capability/);
});

for (const cap of declaredCapabilities().map((c) => c.split('=')[0]).filter((c) => c !== 'pagesize')) {
  test(`the row declares ${cap}, and it is present`, () => {
    expect(missing(cap)).toBeNull();
  });
}

const pageSize = expectedValue('pagesize');
if (pageSize !== undefined) {
  test(`the row declares pagesize=${pageSize}, and the kernel's page size is that`, () => {
    // getconf is not in every userland (the arm64 rows carry busybox); smaps shows the page size.
    const smaps = readFileSync('/proc/self/smaps', 'utf8');
    const m = /^MMUPageSize:\s+(\d+) kB/m.exec(smaps);
    expect(m && Number(m[1]) * 1024).toBe(Number(pageSize));
  });
}

if (expects('compat32')) {
  test('compat32: this Node is a 32-bit arm process and the kernel is 64-bit', () => {
    expect(process.arch).toBe('arm');
    expect(os.machine()).toMatch(/^(armv8|aarch64)/);
  });
}
