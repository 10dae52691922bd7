import path from 'node:path';
import type { Addon } from './addon';

/**
 * Load the addon through node-gyp-build (build/Release first, then prebuilds/).
 * If it can't load, the package still works on the software framework with JS
 * memory, and `addonStatus()` says why. DMA_HEAP_ADDON=0 refuses the addon on
 * purpose, to run as a host without a compiler (macOS, Windows) would.
 *
 * Android is Linux (Termux's and nodejs-mobile's Node report process.platform 'android'):
 * the addon builds there from source against bionic; no prebuild is for it (the linux-*
 * ones are glibc builds), so node-gyp-build finds build/Release or nothing.
 */
let state: { addon: Addon | null; reason?: string; file?: string } | undefined;

export function loadAddon(): Addon | null {
  if (state) return state.addon;
  if (process.env.DMA_HEAP_ADDON === '0') {
    state = { addon: null, reason: 'disabled by DMA_HEAP_ADDON=0' };
  } else if (process.platform !== 'linux' && process.platform !== 'android') {
    state = { addon: null, reason: `no addon on ${process.platform}: dma-buf heaps are Linux-only` };
  } else {
    try {
      // DMA_HEAP_ADDON_PATH=<file.node> loads that build instead (e.g. the cmake-js one).
      const explicit = process.env.DMA_HEAP_ADDON_PATH;
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
      const file = explicit ? path.resolve(explicit) : nodeGypBuild.path(path.join(__dirname, '..', '..'));
      state = { addon: require(file) as Addon, file };
    } catch (err) {
      state = { addon: null, reason: `native addon failed to load: ${(err as Error).message.split('\n')[0]}` };
    }
  }
  return state.addon;
}

/** whether the addon loaded, which file it is (a build or a prebuild), or why not */
export function addonStatus(): { loaded: boolean; file?: string; reason?: string } {
  const addon = loadAddon();
  return addon ? { loaded: true, file: state?.file } : { loaded: false, reason: state?.reason };
}
