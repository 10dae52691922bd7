import { existsSync } from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';
import { invalidArgType, invalidArgValue, outOfRange } from '../args';
import { DmaHeapError } from '../errors';
import type { Addon, ErrorFactory } from './addon';

/** NODE_DEBUG=dma-heap: what the package decides (which addon, which kernel serves), on stderr */
export const debug = debuglog('dma-heap');

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
/** What the addon throws, made by the package: see ErrorFactory. */
const makeError: ErrorFactory = (kind, a, b, c, d, e) => {
  switch (kind) {
    case 'errno':
      return new DmaHeapError(a as string, c as string, { errno: b as number, path: d as string | undefined, message: e as string });
    case 'range':
      return outOfRange(a as string, b as string, c);
    case 'value':
      return invalidArgValue(a as string, c, b as string);
    default:
      return invalidArgType(a as string, b as string, c);
  }
};

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
      const addon = require(file) as Addon;
      // an older build (a stale prebuild) has no setErrors: its errors stay plain, it still works
      (addon as Partial<Addon>).setErrors?.(makeError);
      state = { addon, file };
    } catch (err) {
      // The real error, whole (node-gyp-build's names the platform/ABI it looked for and where;
      // a dlopen failure names the missing symbol or library), on one line.
      const message = (err as Error).message
        .split(/\nRequire stack:/)[0]
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .join('; ');
      const code = (err as { code?: string }).code;
      state = { addon: null, reason: `native addon failed to load: ${message}${code && !message.includes(code) ? ` (${code})` : ''}` };
      warnUnusableHeaps(state.reason!);
    }
  }
  debug(state.addon ? `native addon loaded from ${state.file}` : `native addon not loaded: ${state.reason}`);
  return state.addon;
}

let warned = false;

/**
 * The addon failed to load on a machine that has dma-buf heaps: everything still works, on
 * the software framework with JS memory, which is exactly what a user must not miss. Say it
 * once per process, with the remedy. (DMA_HEAP_ADDON=0 is a choice, not a failure: silent.)
 */
function warnUnusableHeaps(reason: string): void {
  if (warned || !existsSync('/dev/dma_heap')) return;
  warned = true;
  process.emitWarning(
    `${reason}. This machine has /dev/dma_heap, but without the addon dma-heap cannot use it: ` +
      `buffers come from the software framework in JS memory (not shareable, not device-visible). ` +
      `Rebuild it with 'npm rebuild dma-heap' (install scripts must be allowed: not --ignore-scripts; ` +
      `npm 11 asks you to approve them), or install a matching prebuild.`,
    { type: 'DmaHeapWarning', code: 'DMA_HEAP_NO_ADDON' },
  );
}

/**
 * Whether the addon loaded, which file it is (a build or a prebuild), or why not. Without it
 * every heap is the software framework's.
 *
 * @returns `loaded`; `file` when it loaded; `reason` when not (DMA_HEAP_ADDON=0, not Linux, the load's error)
 * @throws Nothing: a failed load is reported here, not thrown.
 * @example
 * ```ts
 * import { addonStatus } from 'dma-heap';
 * const s = addonStatus();
 * console.log(s.loaded ? `addon: ${s.file}` : `no addon: ${s.reason}`);
 * ```
 */
export function addonStatus(): {
  /** whether the native addon loaded */
  loaded: boolean;
  /** the .node file that loaded */
  file?: string;
  /** why it did not load */
  reason?: string;
} {
  const addon = loadAddon();
  return addon ? { loaded: true, file: state?.file } : { loaded: false, reason: state?.reason };
}
