import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { Framework } from '../../lib/framework';
import type { Kernel } from '../../lib/kernel';
import { nativeKernel } from '../../lib/chooser';
import type { OpenHeapOptions } from '../../lib/heap';

/** One kernel the conformance suite runs against. */
export interface TestBackend {
  label: string;
  kind: 'kernel' | 'software';
  /** options that make openHeap() use this backend (a fresh framework per call for software) */
  options(): OpenHeapOptions;
}

/** DMA_HEAP_TEST_KERNEL=1 (the VM rig, a board): the real kernel must be there, or the run fails. */
export const kernelRequired = process.env.DMA_HEAP_TEST_KERNEL === '1';
export const kernelAvailable = nativeKernel() !== null && existsSync('/dev/dma_heap/system');

export function backends(): TestBackend[] {
  const list: TestBackend[] = [];
  if (kernelAvailable || kernelRequired) {
    list.push({ label: 'kernel', kind: 'kernel', options: () => ({ backend: 'kernel' }) });
  }
  const backing = nativeKernel() ? 'memfd' : 'js';
  list.push({ label: `software (${backing})`, kind: 'software', options: () => ({ framework: new Framework() }) });
  return list;
}

/** the raw kernel under a backend's heap, for ABI-level cases */
export type RawKernel = Kernel;

/** fds open in this process now (Linux); leak checks compare two of these. The fd readdir
 *  itself used is closed by the time we readlink, so it drops out. */
export function openFds(): Set<number> {
  return new Set(readdirSync('/proc/self/fd').map(Number).filter((fd) => fdTarget(fd) !== ''));
}

export function fdTarget(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}

/** the fds opened since `before` */
export function newFds(before: Set<number>): number[] {
  return [...openFds()].filter((fd) => !before.has(fd));
}

/** A test that runs only when `cond` holds; otherwise it is reported as skipped, with the reason in its name. */
export function testIf(cond: boolean, reason: string): (name: string, fn: () => unknown) => void {
  return (name, fn) => (cond ? test(name, fn as jest.ProvidesCallback) : test.skip(`${name} [skipped: ${reason}]`, () => undefined));
}
