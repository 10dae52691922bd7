/**
 * How much more this process may charge to its memory cgroup. With dma_heap.mem_accounting
 * (7.0+) the system heap allocates with __GFP_ACCOUNT, and an allocation past memory.max does
 * not fail: measured on 7.3.4 in the matrix's 7.x row, the cgroup's OOM killer SIGKILLs the
 * allocating process inside the ioctl; only a process it may not kill (oom_score_adj -1000)
 * gets ENOMEM. So the package asks first, as it refuses sizes over RAM: an allocation larger
 * than the room left under memory.max (this cgroup's or an ancestor's) is ENOMEM, typed, and
 * the process lives.
 *
 * The room counts what the kernel would reclaim before it gives up (try_charge_memcg reclaims
 * first): memory.current less the page cache (`file`) and reclaimable slab of memory.stat, and
 * less this process's accounted allocations still in flight (allocAsync, a pool growing). It is
 * an estimate: dirty or pinned cache, other processes charging the same group at the same
 * moment, swap. Where it errs the kernel decides, as it would without the check. cgroup v2
 * only: on a v1 memory controller (hybrid hosts with CONFIG_MEMCG_V1) nothing is checked.
 */
import fs from 'node:fs';

/** A limit that leaves the least room, where it is. */
export interface MemcgRoom {
  /** bytes that may still be charged before memory.max */
  bytes: number;
  /** the cgroup directory whose memory.max is the tightest */
  group: string;
}

/** mountinfo escapes space, tab, newline and backslash as \NNN (octal) */
const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));

/** every cgroup2 mount: its root (the part of the hierarchy it shows) and where it is mounted */
function cgroup2Mounts(root: string): Array<{ root: string; point: string }> {
  let info: string;
  try {
    info = fs.readFileSync(`${root}/proc/self/mountinfo`, 'latin1');
  } catch {
    return [];
  }
  const out: Array<{ root: string; point: string }> = [];
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right?.startsWith('cgroup2 ')) continue;
    const fields = left.split(' ');
    if (fields.length >= 5) out.push({ root: unescape(fields[3]), point: unescape(fields[4]) });
  }
  return out;
}

const readNumber = (file: string): number | undefined => {
  try {
    const text = fs.readFileSync(file, 'latin1').trim();
    return text === 'max' ? Infinity : Number(text);
  } catch {
    return undefined;
  }
};

/** memory.stat's page cache and reclaimable slab: what reclaim frees before the OOM killer runs */
function reclaimable(group: string): number {
  let stat: string;
  try {
    stat = fs.readFileSync(`${group}/memory.stat`, 'latin1');
  } catch {
    return 0;
  }
  let bytes = 0;
  for (const m of stat.matchAll(/^(file|slab_reclaimable) (\d+)$/gm)) bytes += Number(m[2]);
  return bytes;
}

/** where `own` (a path in the hierarchy) is seen, and the mount point above it: under the mount
 *  whose root contains it, the most specific first */
function groupDir(mounts: Array<{ root: string; point: string }>, own: string): { dir: string; top: string } | undefined {
  for (const m of [...mounts].sort((a, b) => b.root.length - a.root.length)) {
    const r = m.root === '/' ? '' : m.root;
    if (r === '' || own === r || own.startsWith(`${r}/`)) {
      const top = m.point.replace(/\/$/, '') || '/';
      return { dir: `${top === '/' ? '' : top}${own.slice(r.length)}`.replace(/\/$/, '') || '/', top };
    }
  }
  return undefined; // no mount shows our group (a cgroup namespace without a remount): unknown
}

/** accounted bytes this process has asked the kernel for and not yet seen charged */
let inFlight = 0;

/**
 * The least room any memory.max on the way from this process's cgroup up to its mount's root
 * leaves, less what this process has in flight; undefined when nothing is known to limit it (no
 * cgroup2, no memory controller, every max 'max', our group not visible). `root` prefixes the
 * paths (tests).
 */
export function memcgRoom(root = ''): MemcgRoom | undefined {
  const mounts = cgroup2Mounts(root);
  if (!mounts.length) return undefined;
  let own: string | undefined;
  try {
    own = /^0::(\/.*)$/m.exec(fs.readFileSync(`${root}/proc/self/cgroup`, 'latin1'))?.[1];
  } catch {
    return undefined;
  }
  if (own === undefined || own.includes('/..')) return undefined;
  const where = groupDir(mounts, own);
  if (where === undefined) return undefined;
  const { dir, top } = where;
  let tightest: MemcgRoom | undefined;
  for (let group = dir; ; group = group.slice(0, group.lastIndexOf('/')) || '/') {
    const max = readNumber(`${root}${group}/memory.max`);
    const current = readNumber(`${root}${group}/memory.current`);
    if (max !== undefined && current !== undefined && max !== Infinity) {
      const bytes = Math.max(0, max - Math.max(0, current - reclaimable(`${root}${group}`)) - inFlight);
      if (!tightest || bytes < tightest.bytes) tightest = { bytes, group };
    }
    if (group === top || group === '/' || !group.startsWith(top)) return tightest;
  }
}

/**
 * Count `bytes` as in flight until the returned function runs (once the ioctl settled: by then
 * memory.current holds the charge, or nothing was charged).
 */
export function chargeInFlight(bytes: number): () => void {
  inFlight += bytes;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    inFlight -= bytes;
  };
}
