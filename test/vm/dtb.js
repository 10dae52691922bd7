'use strict';
// Device trees for arm64 rows that need more than qemu's own (`run.js --dtb NAME`): qemu's
// `virt` machine writes the tree it would boot with (`-M virt,dumpdtb=F` with the row's very
// machine, CPU, -smp and -m), dtc decompiles it, the overlay's nodes are merged in (dtc merges
// repeated `/ { ... };` blocks), and dtc compiles it back for `-dtb`. Cached under
// DMA_HEAP_VM_CACHE/dtb/, keyed by qemu's version, the machine arguments and the overlay text:
// qemu writes a fresh rng-seed/kaslr-seed into every dump, so a cached tree keeps boots alike.
//
// Needs dtc (Debian: device-tree-compiler).

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

// Two reusable "shared-dma-pool" regions, as a board's device tree gives its video decoder and
// camera: Linux makes each a CMA area named after its node (rmem->name), and since 6.17 the CMA
// heap registers one dma-buf heap per area, under that name: /dev/dma_heap/video-memory and
// /dev/dma_heap/camera-memory, beside default_cma_region and reserved (cma= on the command line).
// rmem_cma_setup() wants `reusable`, no `no-map`, and base and size aligned to
// CMA_MIN_ALIGNMENT_BYTES = PAGE_SIZE << pageblock_order; on the 16 KiB-page kernel (no
// hugetlb, no THP: pageblock_order = PAGE_BLOCK_MAX_ORDER = 10) that is 16 MiB, so an 8 MiB
// region is impossible there: 32 MiB and 16 MiB, aligned to 16 MiB.
const OVERLAYS = {
  'cma-regions': `
/ {
	reserved-memory {
		#address-cells = <2>;
		#size-cells = <2>;
		ranges;

		video-memory {
			compatible = "shared-dma-pool";
			reusable;
			size = <0x0 0x2000000>;
			alignment = <0x0 0x1000000>;
		};

		camera-memory {
			compatible = "shared-dma-pool";
			reusable;
			size = <0x0 0x1000000>;
			alignment = <0x0 0x1000000>;
		};
	};
};
`,
};

const sh = (file, args) => execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 }).toString();

function which(name) {
  for (const d of (process.env.PATH || '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin'])) {
    const f = path.join(d || '.', name);
    try { fs.accessSync(f, fs.constants.X_OK); return f; } catch {}
  }
  return null;
}

/**
 * The .dtb for overlay `name` on the machine qemu builds from `machineArgs` (everything that
 * shapes the tree: -accel, -M, -cpu, -smp, -m). Returns its path.
 */
function ensureDtb(name, qemu, machineArgs, cache) {
  const overlay = OVERLAYS[name];
  if (overlay === undefined) throw new Error(`no device tree overlay ${name} (have: ${Object.keys(OVERLAYS).join(', ')})`);
  const dtc = which('dtc');
  if (!dtc) throw new Error('--dtb needs dtc (apt-get install device-tree-compiler)');
  const version = sh(qemu, ['--version']).split('\n')[0];
  const key = crypto.createHash('sha256').update(JSON.stringify([version, machineArgs, overlay])).digest('hex').slice(0, 16);
  const dir = path.join(cache, 'dtb');
  const out = path.join(dir, `${name}-${key}.dtb`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(dir, 'tmp-'));
  try {
    const i = machineArgs.indexOf('-M');
    if (i < 0) throw new Error('ensureDtb: the machine arguments name no -M');
    const args = machineArgs.slice();
    args[i + 1] = `${args[i + 1]},dumpdtb=${path.join(tmp, 'qemu.dtb')}`;
    sh(qemu, [...args, '-nographic', '-nodefaults']);
    const dts = sh(dtc, ['-q', '-I', 'dtb', '-O', 'dts', path.join(tmp, 'qemu.dtb')]);
    const src = path.join(tmp, `${name}.dts`);
    fs.writeFileSync(src, `${dts}\n// --- overlay ${name} (test/vm/dtb.js)\n${overlay}`);
    sh(dtc, ['-q', '-I', 'dts', '-O', 'dtb', '-o', path.join(tmp, 'out.dtb'), src]);
    fs.copyFileSync(src, out.replace(/\.dtb$/, '.dts'));
    fs.renameSync(path.join(tmp, 'out.dtb'), out);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return out;
}

module.exports = { OVERLAYS, ensureDtb };
