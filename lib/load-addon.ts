import path from 'node:path';
import type { Addon } from './addon';

/**
 * Load the addon through node-gyp-build (build/Release first, then prebuilds/).
 * If it can't load, the package still works on the software framework with JS
 * memory, and `addonStatus()` says why. DMA_HEAP_ADDON=0 refuses the addon on
 * purpose, to run as a host without a compiler (macOS, Windows) would.
 */
let state: { addon: Addon | null; reason?: string } | undefined;

export function loadAddon(): Addon | null {
  if (state) return state.addon;
  if (process.env.DMA_HEAP_ADDON === '0') {
    state = { addon: null, reason: 'disabled by DMA_HEAP_ADDON=0' };
  } else if (process.platform !== 'linux') {
    state = { addon: null, reason: `no addon on ${process.platform}: dma-buf heaps are Linux-only` };
  } else {
    try {
      // DMA_HEAP_ADDON_PATH=<file.node> loads that build instead (e.g. the cmake-js one).
      const explicit = process.env.DMA_HEAP_ADDON_PATH;
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const nodeGypBuild = require('node-gyp-build') as (dir: string) => Addon;
      state = {
        addon: explicit ? (require(path.resolve(explicit)) as Addon) : nodeGypBuild(path.join(__dirname, '..')),
      };
    } catch (err) {
      state = { addon: null, reason: `native addon failed to load: ${(err as Error).message.split('\n')[0]}` };
    }
  }
  return state.addon;
}

export function addonStatus(): { loaded: boolean; reason?: string } {
  const addon = loadAddon();
  return addon ? { loaded: true } : { loaded: false, reason: state?.reason };
}
