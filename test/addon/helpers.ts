/**
 * What the addon's tests share: the addon as this host loads it, memfds standing in for
 * dma-bufs (mappable fds that need no driver), and a suite wrapper that checks the file
 * leaks no fd. One test file per source file of src/ (and lib/native/kernel.ts).
 *
 * Errors the addon throws come from Node's main realm, not jest's test realm:
 * match them by name/code, never with instanceof (toThrow(TypeError)).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Addon } from '../../lib/native/addon';
import { loadAddon } from '../../lib/native/load';
import * as uapi from '../../lib/uapi';
import { isOpen, newFds, settledFds } from '../helpers/fds';
import { describeIf } from '../helpers/skip';

export { fdCount, fdFlags, gc, gcUntil, isOpen, settledFds, tick } from '../helpers/fds';

export const disabled = process.env.DMA_HEAP_ADDON === '0' || process.platform !== 'linux';
export const addon = disabled ? null : loadAddon();
export const A = addon as Addon;
export const page = addon ? A.pageSize() : 4096;

export const FIONREAD = 0x541b; // legacy number: encodes no size, yet the kernel writes an int
export const SEEK_END = 2;
export const O_CLOEXEC_OCTAL = 0o2000000;

export const mapsOf = (name: string) =>
  fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name} `)).length;

export function thrown(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (e) {
    return e as Record<string, unknown>;
  }
  throw new Error('did not throw');
}

let serial = 0;
/** a memfd of `size` bytes, named uniquely so /proc/self/maps can be counted */
export function memfd(size: number): { fd: number; name: string } {
  const name = `dmaheap-test-${process.pid}-${++serial}`;
  const fd = A.memfdCreate(name, uapi.MFD_CLOEXEC | uapi.MFD_ALLOW_SEALING);
  A.ftruncate(fd, size);
  return { fd, name };
}

export function addonFile(): string {
  if (process.env.DMA_HEAP_ADDON_PATH) return path.resolve(process.env.DMA_HEAP_ADDON_PATH);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return (require('node-gyp-build') as { path(dir: string): string }).path(path.join(__dirname, '..', '..'));
}

/** a scratch directory, removed after the file */
export function scratchDir(): string {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-addon-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  return tmp;
}

/** describe() when the addon loaded (skipped, with the reason in its name, when not), ending with a leak check */
export function addonSuite(name: string, body: () => void): void {
  describeIf(addon !== null, 'the addon is not loaded here')(name, () => {
    // Settled: in a jest worker that runs files in band (the VMs' 2 CPUs), an earlier file's
    // garbage may close its fds while this file runs.
    let fdsAtStart = new Set<number>();
    beforeAll(async () => {
      fdsAtStart = await settledFds();
    });
    body();
    describe('last', () => {
      test('no fd leaks across the whole file', () => {
        expectFdsAsBefore(fdsAtStart);
      });
    });
  });
}

/** no fd opened since `before` is still open, and none of `before` was closed (take `before` from settledFds()) */
export function expectFdsAsBefore(before: Set<number>): void {
  expect(newFds(before)).toEqual([]);
  expect([...before].filter((fd) => !isOpen(fd))).toEqual([]);
}
