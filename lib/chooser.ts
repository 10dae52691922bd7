import { existsSync } from 'node:fs';
import { addonStatus, loadAddon } from './native/load';
import type { Kernel } from './kernel';
import { NativeKernel } from './native/kernel';
import { Framework } from './framework';

/** One of each kernel per thread (per JS environment), made on first use. */
let native: NativeKernel | null | undefined;
let software: Framework | undefined;

/** The real kernel, if the addon loaded (whether or not this host has heaps). */
export function nativeKernel(): NativeKernel | null {
  if (native === undefined) {
    const addon = loadAddon();
    native = addon ? new NativeKernel(addon) : null;
  }
  return native;
}

/** The process's default software framework: system and CMA heaps, memfd backing when it can. */
export function softwareKernel(): Framework {
  software ??= new Framework();
  return software;
}

/** whether the real kernel offers heaps here at all */
export function hasKernelHeaps(): boolean {
  return nativeKernel() !== null && existsSync('/dev/dma_heap');
}

export type BackendChoice = 'auto' | 'kernel' | 'software';

export interface KernelOptions {
  /** 'kernel' or 'software' forces one; 'auto' (default) prefers the real kernel.
   *  The DMA_HEAP_BACKEND environment variable sets the default. */
  backend?: BackendChoice;
  /** a software framework of your own (your heaps, policy, fault injection); implies 'software' */
  framework?: Framework;
}

export function backendChoice(options: KernelOptions): BackendChoice {
  if (options.framework) return 'software';
  const choice = options.backend ?? (process.env.DMA_HEAP_BACKEND as BackendChoice | undefined) ?? 'auto';
  if (choice !== 'auto' && choice !== 'kernel' && choice !== 'software') {
    throw Object.assign(new TypeError(`backend must be 'auto', 'kernel' or 'software', got ${JSON.stringify(choice)}`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
  return choice;
}

export function requireNative(): Kernel {
  const kernel = nativeKernel();
  if (!kernel) {
    throw Object.assign(new Error(`the real-kernel backend needs the native addon: ${addonStatus().reason}`), {
      code: 'ERR_DMA_HEAP_NO_ADDON',
    });
  }
  return kernel;
}
