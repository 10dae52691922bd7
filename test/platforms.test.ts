// Android is Linux (issue 9): Termux's and nodejs-mobile's Node report process.platform
// 'android'. The loader must try the addon there, and a permission error on a heap must
// speak of Android's model (0444 nodes, SELinux), not udev. process.platform is faked per
// test; everything else (node-gyp-build, the kernel) is this host's.
import fs from 'node:fs';
import { accessHint } from '../lib/errors';
import { hostPageSize } from '../lib/framework/page-size';

const realPlatform = process.platform;
function asPlatform<T>(platform: string, fn: () => T): T {
  Object.defineProperty(process, 'platform', { value: platform, configurable: true });
  try {
    return fn();
  } finally {
    Object.defineProperty(process, 'platform', { value: realPlatform, configurable: true });
  }
}

/** addonStatus() from a fresh copy of the loader (its state is per module instance) */
function statusAs(platform: string): { loaded: boolean; reason?: string } {
  return asPlatform(platform, () => {
    let status: { loaded: boolean; reason?: string } = { loaded: false };
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      status = (require('../lib/native/load') as typeof import('../lib/native/load')).addonStatus();
    });
    return status;
  });
}

const addonWanted = process.env.DMA_HEAP_ADDON !== '0' && realPlatform === 'linux';

describe('Android is accepted as Linux', () => {
  test('the loader tries the addon on android (and loads this host\'s build when there is one)', () => {
    const status = statusAs('android');
    expect(status.reason ?? '').not.toMatch(/no addon on android/);
    if (addonWanted) expect(status).toEqual(expect.objectContaining({ loaded: true }));
    else expect(status.reason).toMatch(/DMA_HEAP_ADDON=0/);
  });

  test('other systems are still refused with the reason', () => {
    if (process.env.DMA_HEAP_ADDON === '0') {
      expect(statusAs('darwin').reason).toMatch(/DMA_HEAP_ADDON=0/);
    } else {
      expect(statusAs('darwin')).toEqual({ loaded: false, reason: 'no addon on darwin: dma-buf heaps are Linux-only' });
    }
  });

  test('the page size comes from AT_PAGESZ on android as on linux (16 KiB-page devices)', () => {
    // an auxv that says 16 KiB pages, in this process's word size
    const wide = process.arch !== 'arm' && process.arch !== 'ia32';
    const auxv = Buffer.alloc(wide ? 32 : 16);
    if (wide) {
      auxv.writeBigUInt64LE(6n, 0); // AT_PAGESZ
      auxv.writeBigUInt64LE(16384n, 8);
    } else {
      auxv.writeUInt32LE(6, 0);
      auxv.writeUInt32LE(16384, 4);
    }
    const real = fs.readFileSync;
    const spy = jest.spyOn(fs, 'readFileSync').mockImplementation(((file: fs.PathOrFileDescriptor, ...rest: unknown[]) =>
      file === '/proc/self/auxv' ? auxv : (real as (...a: unknown[]) => unknown)(file, ...rest)) as typeof fs.readFileSync);
    try {
      expect(asPlatform('android', () => hostPageSize(null))).toBe(16384);
      expect(asPlatform('linux', () => hostPageSize(null))).toBe(16384);
      expect(asPlatform('win32', () => hostPageSize(null))).toBe(4096);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('the EACCES hint follows the platform', () => {
  test('android: 0444 nodes and SELinux, no udev rule', () => {
    const hint = accessHint('/dev/dma_heap/system', 'android');
    expect(hint).toMatch(/0444/);
    expect(hint).toMatch(/SELinux/);
    expect(hint).toMatch(/logcat/);
    expect(hint).not.toMatch(/udev rule,|udevadm|GROUP=/);
    expect(hint).toMatch(/backend: 'software'/);
  });

  test('linux: the udev rule, for heaps and for /dev/udmabuf', () => {
    expect(accessHint('/dev/dma_heap/system', 'linux')).toMatch(/SUBSYSTEM=="dma_heap", GROUP="video", MODE="0660"/);
    expect(accessHint('/dev/udmabuf', 'linux')).toMatch(/KERNEL=="udmabuf"/);
    expect(accessHint('/dev/dma_heap/system', 'linux')).not.toMatch(/SELinux/);
  });
});
