/**
 * Issue 13's input items that the validation factory (issue 12, lib/validate.ts) answers:
 * strict booleans, plain-object options, unknown keys, values rendered without running their
 * toString, and a read-only DmaBuf.fd. The fuzz (fuzz.test.ts) tries thousands of such inputs;
 * these are the ones the issue reported.
 */
import { closeSync, fstatSync, mkdtempSync, openSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { addonStatus, allocShareable, DmaBufChannel, fromFd, openHeap, SyncFile } from '../../lib';
import { Framework, SoftwareFenceSource } from '../../lib/framework';
import { poisonedPrimitive } from './helpers';
import { testIf } from '../helpers/skip';

const withAddon = addonStatus().loaded;
const testAddon = testIf(withAddon, 'needs the native addon');
const argError = (code: string) => expect.objectContaining({ code });

describe('issue 13: arguments and options', () => {
  test("a buffer's fd can't be reassigned", () => {
    using heap = openHeap('system', { backend: 'software' });
    using a = heap.alloc(4096);
    using b = heap.alloc(4096);
    const fd = a.fd;
    a.close();
    expect(() => {
      (a as { fd: number }).fd = b.fd;
    }).toThrow(TypeError);
    expect(a.fd).toBe(-1);
    expect(a.closed).toBe(true);
    a.close(); // must not close b's fd
    expect(b.read(0, 1)).toHaveLength(1);
    expect(fd).toBeGreaterThanOrEqual(0);
  });

  test('boolean options are booleans, options are objects, unknown keys and hostile toString are refused typed', () => {
    using heap = openHeap('system', { backend: 'software' });
    expect(() => heap.alloc(4096, { readOnly: 'false' as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => heap.alloc(4096, { cloexec: 1 as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => heap.alloc(4096, 'readOnly' as never)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => heap.alloc(4096, { readonly: true } as never)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_INVALID_ARG_(VALUE|TYPE)$/) }));
    expect(() => allocShareable(4096, { heap: 42 as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => heap.alloc(4096, { name: poisonedPrimitive() as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => heap.alloc(poisonedPrimitive() as never)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    using buf = heap.alloc(4096);
    expect(() => buf.read(poisonedPrimitive() as never, 1)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => buf.beginCpuAccess(poisonedPrimitive() as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });

  test('null is no default: an option given as null is refused, not read as missing', () => {
    const fw = new Framework();
    try {
      expect(() => fw.faults.failAllocation({ nth: 2, code: null as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => new Framework({ cma: { size: null as never } })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => new SoftwareFenceSource(fw, { name: null as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => new SoftwareFenceSource(fw, { timeout: null as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => new SoftwareFenceSource(fw, { nam: 'x' } as never)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^ERR_INVALID_ARG_(VALUE|TYPE)$/) }));
    } finally {
      fw.dispose();
    }
  });

  // issue 18: DmaBufChannel.listen read `type` with ?? (fuzz seed 284127086), and
  // Framework's credentials were spread over the process's unchecked
  test('null is no default, issue 18: Framework credentials (uid, gid, groups) are checked, not spread unchecked', () => {
    expect(() => new Framework({ credentials: { uid: null as never } })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => new Framework({ credentials: { gid: null as never } })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => new Framework({ credentials: { groups: null as never } })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => new Framework({ credentials: { groups: [1, null as never] } })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    expect(() => new Framework({ credentials: { uid: -1 } })).toThrow(argError('ERR_OUT_OF_RANGE'));
    expect(() => new Framework({ credentials: { uid: 'root' as never } })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
    // an explicit undefined is absent: the process's own id, not undefined
    const fw = new Framework({ credentials: { uid: undefined, gid: 5, groups: [7] } });
    try {
      expect(fw.credentials).toEqual({ uid: process.getuid!(), gid: 5, groups: [7] });
    } finally {
      fw.dispose();
    }
  });

  testAddon('null is no default, issue 18: DmaBufChannel.listen({ type: null }) is refused and binds nothing', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-null-'));
    try {
      for (const key of ['type', 'backlog', 'maxFds', 'maxPayload']) {
        // a server wrongly made is closed at once: the failure must not also keep jest alive
        expect(() => DmaBufChannel.listen(path.join(dir, 's.sock'), { [key]: null } as never).close()).toThrow(
          expect.objectContaining({ code: expect.stringMatching(/^ERR_INVALID_ARG_(VALUE|TYPE)$/) }),
        );
      }
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a sync_file's options are checked like a dma-buf's", () => {
    using heap = openHeap('system', { backend: 'software' });
    using buf = heap.alloc(4096);
    const sync = buf.exportSyncFile('read');
    try {
      expect(() => sync.dup({ cloexec: 'yes' as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => sync.dup('cloexec' as never)).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => SyncFile.fromFd(sync.fd, { dup: 0 as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(() => SyncFile.fromFd(sync.fd, { framework: {} as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      const other = buf.exportSyncFile('write');
      expect(() => {
        (sync as { fd: number }).fd = other.fd; // close() must never close another file's fd
      }).toThrow(TypeError);
      other.close();
      sync.dup({ cloexec: false }).close();
      SyncFile.fromFd(sync.fd).close();
    } finally {
      sync.close();
    }
  });

  testAddon("fromFd(fd, { dup: 0 }) is refused and leaves the caller's fd open", () => {
    using heap = openHeap('system', { backend: 'software' });
    using buf = heap.alloc(4096);
    const copy = openSync(`/proc/self/fd/${buf.fd}`, 'r+');
    try {
      expect(() => fromFd(copy, { dup: 0 as never })).toThrow(argError('ERR_INVALID_ARG_TYPE'));
      expect(fstatSync(copy).size).toBe(4096);
    } finally {
      closeSync(copy);
    }
  });

});
