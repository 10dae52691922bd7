// What the kernel row under test guarantees, and a way for tests to depend on a device.
//
// The VM rig (test/vm/run.js, test/kernel.js --matrix) sets DMA_HEAP_EXPECT per kernel row to a
// comma list of what that row guarantees, e.g. `system,udmabuf,cma,vgem,vivid,sw_sync` or
// `system,cma,compat32,pagesize=16384`. A test that needs a device:
//   - runs, and FAILS when the device is missing, if the row declares it;
//   - runs if the device happens to be present although nothing declares it;
//   - is skipped with the reason in its name otherwise (a laptop, a container, another row).
// This file uses node: modules only, so it works wherever the tests are.

import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import * as os from 'node:os';
import { testIf } from './skip';

/** What a row can declare. `pagesize=N` declares the kernel's page size in bytes. */
export type Capability =
  | 'system' // /dev/dma_heap/system
  | 'udmabuf' // /dev/udmabuf
  | 'cma' // a CMA heap in /dev/dma_heap (default_cma_region, reserved, linux,cma, default-pool)
  | 'cma-alias' // 6.17+: default_cma_region and its legacy name, one area under two names
  | 'vgem' // DRM vgem: a /dev/dri/card* whose device is vgem
  | 'vivid' // V4L2 vivid: a /dev/video* named vivid-*
  | 'vivid-contig' // vivid's capture device uses the dma-contig allocator (vivid.allocators=1)
  | 'sw_sync' // the software fence source, /sys/kernel/debug/sync/sw_sync
  | 'compat32' // this process is 32-bit on a 64-bit kernel: ioctls go through compat_ioctl
  | 'cma-regions' // 6.17+: the device tree's reusable shared-dma-pool regions as heaps (CMA_REGIONS)
  | 'mem-accounting' // 6.18+: dma_heap.mem_accounting=1 and cgroup v2 with the memory controller
  | 'heap-module'; // the kernel loads modules and the rig ships the protected test heap's module

/** The CMA heap names a real kernel uses, in the order openContiguousHeap() prefers them. */
export const CMA_HEAP_NAMES = ['default_cma_region', 'linux,cma', 'reserved', 'default-pool'];

/** The device tree's CMA regions on the cma-regions row (test/vm/dtb.js): node name, size in bytes. */
export const CMA_REGIONS: Record<string, number> = { 'video-memory': 32 << 20, 'camera-memory': 16 << 20 };

/** The heap the test module registers (tee_heap's name for secure video playback). */
export const PROTECTED_HEAP = 'protected,secure-video';

/** Where dma_heap's mem_accounting parameter shows (Linux 6.18+, read-only, set at boot). */
export const MEM_ACCOUNTING_PARAM = '/sys/module/dma_heap/parameters/mem_accounting';

/** The cgroup v2 hierarchy (the VM rig mounts it there, as systemd does). */
export const CGROUP2 = '/sys/fs/cgroup';

function parse(raw: string | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const item of (raw ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = item.indexOf('=');
    if (eq < 0) m.set(item, '');
    else m.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return m;
}

const declared = parse(process.env.DMA_HEAP_EXPECT);

/** true when the row declares `cap` (DMA_HEAP_EXPECT lists it) */
export function expects(cap: Capability | string): boolean {
  return declared.has(cap);
}

/** the value of a declared `key=value` (e.g. `pagesize`), or undefined */
export function expectedValue(key: string): string | undefined {
  const v = declared.get(key);
  return v === undefined || v === '' ? undefined : v;
}

/** everything the row declares, as written */
export function declaredCapabilities(): string[] {
  return [...declared.entries()].map(([k, v]) => (v ? `${k}=${v}` : k));
}

const ls = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};
const read = (file: string): string => {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
};

/** the CMA heaps /dev/dma_heap holds, in preference order */
export function cmaHeaps(): string[] {
  const have = new Set(ls('/dev/dma_heap'));
  return CMA_HEAP_NAMES.filter((n) => have.has(n));
}

/** the /dev/dri/card* nodes whose device is vgem */
export function vgemCards(): string[] {
  return ls('/sys/class/drm')
    .filter((c) => /^card\d+$/.test(c))
    .filter((c) => {
      try {
        return /(^|\/)vgem$/.test(readlinkSync(`/sys/class/drm/${c}/device`));
      } catch {
        return false;
      }
    })
    .map((c) => `/dev/${c.replace(/^card/, 'dri/card')}`);
}

/** the /dev/video* nodes of vivid, with their names (vivid-000-vid-cap, ...) */
export function vividNodes(): { path: string; name: string }[] {
  return ls('/sys/class/video4linux')
    .map((v) => ({ path: `/dev/${v}`, name: read(`/sys/class/video4linux/${v}/name`) }))
    .filter((v) => v.name.startsWith('vivid'));
}

/**
 * The protected test heap's module (test/kernel/modules/), which the VM rig builds for kernels
 * with modules and names in DMA_HEAP_VM_MODULES; null when there is none.
 */
export function heapModulePath(): string | null {
  const dir = process.env.DMA_HEAP_VM_MODULES;
  if (!dir) return null;
  const ko = `${dir}/dma_heap_protected.ko`;
  return existsSync(ko) ? ko : null;
}

/** where sw_sync is, or null (debugfs must be mounted; the VM rig mounts it) */
export function swSyncPath(): string | null {
  for (const p of ['/sys/kernel/debug/sync/sw_sync', '/sys/kernel/debug/sw_sync']) if (existsSync(p)) return p;
  return null;
}

/** Is `cap` here? Returns null when it is, else why not (for the failure or skip message). */
export function missing(cap: Capability | string): string | null {
  switch (cap) {
    case 'system':
      return existsSync('/dev/dma_heap/system') ? null : 'no /dev/dma_heap/system';
    case 'udmabuf':
      return existsSync('/dev/udmabuf') ? null : 'no /dev/udmabuf';
    case 'cma':
      return cmaHeaps().length ? null : `no CMA heap in /dev/dma_heap (looked for ${CMA_HEAP_NAMES.join(', ')})`;
    case 'cma-alias': {
      const h = cmaHeaps();
      return h.includes('default_cma_region') && h.length > 1 ? null : `no default_cma_region with a legacy alias (have: ${h.join(', ') || 'none'})`;
    }
    case 'vgem':
      return vgemCards().length ? null : 'no vgem DRM device in /sys/class/drm';
    case 'vivid':
      return vividNodes().length ? null : 'no vivid device in /sys/class/video4linux';
    case 'vivid-contig':
      return vividNodes().length && read('/sys/module/vivid/parameters/allocators').split(',')[0] === '1'
        ? null : 'no vivid with allocators=1 (dma-contig)';
    case 'sw_sync':
      return swSyncPath() ? null : 'no sw_sync in debugfs (CONFIG_SW_SYNC, debugfs mounted at /sys/kernel/debug)';
    case 'cma-regions': {
      const have = ls('/dev/dma_heap');
      const absent = Object.keys(CMA_REGIONS).filter((r) => !have.includes(r));
      return absent.length ? `no heap for the device tree's CMA region(s) ${absent.join(', ')} in /dev/dma_heap` : null;
    }
    case 'mem-accounting': {
      const param = read(MEM_ACCOUNTING_PARAM);
      if (param !== 'Y') return param ? `dma_heap.mem_accounting is ${param} (boot with dma_heap.mem_accounting=1)` : `no ${MEM_ACCOUNTING_PARAM} (Linux 6.18+)`;
      return read(`${CGROUP2}/cgroup.controllers`).split(/\s+/).includes('memory')
        ? null : `no cgroup v2 memory controller at ${CGROUP2} (CONFIG_MEMCG, cgroup2 mounted)`;
    }
    case 'heap-module':
      if (!existsSync('/proc/modules')) return 'this kernel cannot load modules (no /proc/modules: CONFIG_MODULES)';
      return heapModulePath() ? null : 'no protected test heap module (DMA_HEAP_VM_MODULES names none: test/kernel/modules/, built by test/kernel/build.js)';
    case 'compat32':
      return process.arch === 'arm' && /^(armv8|aarch64)/.test(os.machine())
        ? null : `not a 32-bit arm process on a 64-bit kernel (process.arch ${process.arch}, machine ${os.machine()})`;
    default:
      return `unknown capability ${cap}`;
  }
}

/** true when a test needing `caps` should run: each is declared or present */
export function shouldRun(...caps: (Capability | string)[]): boolean {
  return caps.every((c) => expects(c) || missing(c) === null);
}

/** Throws when a declared capability is missing; call it first in a test that needs `caps`. */
export function requireCapabilities(...caps: (Capability | string)[]): void {
  for (const c of caps) {
    const why = missing(c);
    if (why !== null) {
      throw new Error(`this kernel row declares ${c} (DMA_HEAP_EXPECT=${process.env.DMA_HEAP_EXPECT ?? ''}) but ${why}`);
    }
  }
}

function skipReason(caps: (Capability | string)[]): string {
  return caps.filter((c) => !expects(c) && missing(c) !== null)
    .map((c) => `${missing(c)}, and DMA_HEAP_EXPECT does not declare ${c}`).join('; ');
}

/**
 * `testWith('cma')('name', fn)`: a test that needs the devices `caps`. It runs when each is
 * declared by the row or present; it fails (before `fn`) when a declared one is missing; it is
 * skipped with the reason in its name otherwise.
 */
export function testWith(...caps: (Capability | string)[]): (name: string, fn: () => unknown, timeout?: number) => void {
  return (name, fn, timeout) => {
    if (!shouldRun(...caps)) {
      testIf(false, skipReason(caps))(name, fn);
      return;
    }
    const body = (): unknown => {
      requireCapabilities(...caps);
      return fn();
    };
    test(name, body as jest.ProvidesCallback, timeout);
  };
}

/** `describeWith('vgem')('name', () => {...})`: like testWith for a whole block. */
export function describeWith(...caps: (Capability | string)[]): (name: string, fn: () => void) => void {
  return (name, fn) => {
    if (!shouldRun(...caps)) {
      // the body is not run (it may look for the device to define its tests): one skipped test stands for it
      describe(name, () => {
        testIf(false, skipReason(caps))('', () => undefined);
      });
      return;
    }
    describe(name, () => {
      beforeAll(() => requireCapabilities(...caps));
      fn();
    });
  };
}
