import fs from 'node:fs';
import os from 'node:os';
import type { Addon } from '../native/addon';

const AT_PAGESZ = 6n;

/**
 * The host's page size: the addon's sysconf(_SC_PAGESIZE) when it loaded; else on Linux
 * (and Android, whose 16 KiB-page devices ship since Android 15) AT_PAGESZ from /proc/self/auxv (arm64 kernels come with 4, 16 and 64 KiB pages);
 * else 16 KiB on Apple silicon and 4 KiB elsewhere.
 */
export function hostPageSize(addon: Addon | null): number {
  if (addon) return addon.pageSize();
  if (process.platform === 'linux' || process.platform === 'android') {
    try {
      const auxv = fs.readFileSync('/proc/self/auxv');
      const wide = process.arch !== 'arm' && process.arch !== 'ia32';
      const le = os.endianness() === 'LE';
      const word = (at: number): bigint =>
        wide
          ? le ? auxv.readBigUInt64LE(at) : auxv.readBigUInt64BE(at)
          : BigInt(le ? auxv.readUInt32LE(at) : auxv.readUInt32BE(at));
      const half = wide ? 8 : 4;
      for (let i = 0; i + 2 * half <= auxv.length; i += 2 * half) {
        const type = word(i);
        if (type === AT_PAGESZ) return Number(word(i + half));
        if (type === 0n) break; // AT_NULL
      }
    } catch {
      // no procfs: fall through
    }
  }
  return process.platform === 'darwin' && process.arch === 'arm64' ? 16384 : 4096;
}
