import { accessSync, constants, readdirSync, readFileSync, statSync } from 'node:fs';
import { addonStatus, listHeaps } from '../index';
import { COMMON_OPTIONS, errorCode, formatSize, groupName, modeString, table, userName, type Command } from './common';
import { jsonText, shown } from '../escape';
import { heapTraits, readHeapFacts, type HeapKind } from '../heap-kind';

export interface DeviceNode {
  name: string;
  path: string;
  /** permission bits in octal, e.g. "0600" */
  mode: string;
  /** e.g. "crw-------" */
  perms: string;
  owner: string;
  uid: number;
  group: string;
  gid: number;
  /** whether this process may open it (access(2) R_OK: O_RDONLY is enough to allocate) */
  accessible: boolean;
}

/** A heap's node, with what the kernel shows of the heap (lib/heap-kind.ts) */
export interface HeapNode extends DeviceNode {
  /** 'system', 'contiguous' (a CMA area), 'protected' (not CPU-visible) or 'other' */
  kind: HeapKind;
  /** allocations charged to the allocating process's memory cgroup (dma_heap.mem_accounting) */
  accounted: boolean;
}

export interface ListReport {
  addon: { loaded: boolean; file?: string; reason?: string };
  kernel: {
    dir: string;
    /** whether /dev/dma_heap exists, whatever the addon does */
    present: boolean;
    /** why it could not be read, when it exists */
    error?: string;
    heaps: HeapNode[];
  };
  udmabuf: (DeviceNode & { present: true; sizeLimit: number | null; sizeLimitSource: string }) | { path: string; present: false };
  software: { backing: 'memfd' | 'js'; heaps: string[] };
  /** dma_heap.mem_accounting (7.0+): false where the kernel has no such parameter */
  memAccounting: boolean;
}

function node(name: string, path: string): DeviceNode {
  const st = statSync(path);
  let accessible = true;
  try {
    accessSync(path, constants.R_OK);
  } catch {
    accessible = false;
  }
  return {
    name,
    path,
    mode: (st.mode & 0o7777).toString(8).padStart(4, '0'),
    perms: modeString(st.mode),
    owner: userName(st.uid),
    uid: st.uid,
    group: groupName(st.gid),
    gid: st.gid,
    accessible,
  };
}

/** What /dev and /sys say, read directly: the heaps are listed whether or not the addon loads. */
export function listReport(): ListReport {
  const addon = addonStatus();
  const dir = '/dev/dma_heap';
  const kernel: ListReport['kernel'] = { dir, present: false, heaps: [] };
  const facts = readHeapFacts();
  try {
    const names = readdirSync(dir).sort();
    kernel.present = true;
    for (const name of names) kernel.heaps.push({ ...node(name, `${dir}/${name}`), ...heapTraits(name, facts) });
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') {
      kernel.present = true;
      kernel.error = `${errorCode(err)}: ${(err as Error).message}`;
    }
  }

  let udmabuf: ListReport['udmabuf'];
  try {
    const n = node('udmabuf', '/dev/udmabuf');
    let sizeLimit: number | null = null;
    let sizeLimitSource = '/sys/module/udmabuf/parameters/size_limit_mb unreadable';
    try {
      sizeLimit = Number(readFileSync('/sys/module/udmabuf/parameters/size_limit_mb', 'utf8').trim()) * 1024 * 1024;
      sizeLimitSource = 'size_limit_mb';
    } catch {
      // a kernel without the parameter: leave it unknown
    }
    udmabuf = { ...n, present: true, sizeLimit, sizeLimitSource };
  } catch {
    udmabuf = { path: '/dev/udmabuf', present: false };
  }

  const software = listHeaps({ backend: 'software' });
  return {
    addon: addon.loaded ? { loaded: true, file: addon.file } : { loaded: false, reason: addon.reason },
    kernel,
    udmabuf,
    software: { backing: addon.loaded ? 'memfd' : 'js', heaps: software.map((h) => h.name) },
    memAccounting: facts.memAccounting,
  };
}

/** what each kind means to the user reading the list */
const KIND_WORDS: Record<HeapKind, string> = {
  system: 'system',
  contiguous: 'contiguous (CMA)',
  protected: 'protected (not CPU-mappable)',
  other: 'other',
};

export const list: Command = {
  name: 'list',
  summary: 'heaps with mode, owner, group and whether you may open them; udmabuf and its cap',
  usage: 'list [--json]',
  help: `Lists the kernel's heaps (/dev/dma_heap/*) with what each is (system, contiguous,
protected: not CPU-mappable), whether allocations are charged to your memory cgroup
(dma_heap.mem_accounting), their permissions and whether this user may open them, /dev/udmabuf with its per-buffer cap, the software framework's heaps,
and whether the native addon loaded (without it the package cannot use the kernel's heaps).`,
  options: { ...COMMON_OPTIONS },
  run(values, _positionals, io) {
    const r = listReport();
    if (values.json) {
      io.out(jsonText(r, 2));
      return 0;
    }
    if (!r.kernel.present) {
      io.out(`kernel heaps: none — ${r.kernel.dir} does not exist (no CONFIG_DMABUF_HEAPS, or not Linux)`);
    } else if (r.kernel.error) {
      io.out(`kernel heaps: ${r.kernel.dir} exists but cannot be read (${shown(r.kernel.error)})`);
    } else if (r.kernel.heaps.length === 0) {
      io.out(`kernel heaps: none — ${r.kernel.dir} is empty`);
    } else {
      io.out(`kernel heaps (${r.kernel.dir}):`);
      // heap names are whatever a driver (or whoever made the node) called them; user and
      // group names whatever /etc/passwd says
      const rows = r.kernel.heaps.map((h) => [shown(h.name), KIND_WORDS[h.kind] + (h.accounted ? ', charged to your memory cgroup' : ''), h.perms, `${shown(h.owner)}:${shown(h.group)}`, h.accessible ? 'you may open it' : 'no access for this user']);
      for (const line of table(rows)) io.out(line);
    }
    if (r.udmabuf.present) {
      const u = r.udmabuf;
      const cap = u.sizeLimit === null ? 'cap unknown' : `cap ${formatSize(u.sizeLimit)} per buffer (size_limit_mb)`;
      io.out(`udmabuf: ${u.path} ${u.perms} ${shown(u.owner)}:${shown(u.group)}, ${u.accessible ? 'you may open it' : 'no access for this user'}, ${cap}`);
    } else {
      io.out('udmabuf: none — /dev/udmabuf does not exist (no CONFIG_UDMABUF, or the module is not loaded)');
    }
    io.out(`software framework (${r.software.backing} backing): ${r.software.heaps.join(', ')}`);
    if (r.addon.loaded) {
      io.out(`native addon: loaded (${shown(r.addon.file ?? '')})`);
    } else {
      io.out(`native addon: NOT loaded (${shown(r.addon.reason ?? '')})`);
      if (r.kernel.heaps.length) {
        io.out(`  the kernel's heaps above exist, but this package cannot use them without the addon: run 'npm rebuild dma-heap' (install scripts allowed)`);
      }
    }
    const denied = r.kernel.heaps.filter((h) => !h.accessible);
    if (denied.length) {
      io.out(`no access to ${denied.map((h) => shown(h.name)).join(', ')}: grant a group with a udev rule, e.g. SUBSYSTEM=="dma_heap", GROUP="video", MODE="0660"`);
    }
    return 0;
  },
};
