import { existsSync } from 'node:fs';
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

// fd helpers live in one place (test/helpers/fds.ts); re-exported for the suites that import them from here
export { fdTarget, newFds, openFds } from './fds';
