/**
 * How much more this process may charge to its memory cgroup. With dma_heap.mem_accounting
 * (7.0+) the system heap allocates with __GFP_ACCOUNT, and an allocation past memory.max does
 * not fail: measured on 7.3.4 in the matrix's 7.x row, the cgroup's OOM killer SIGKILLs the
 * allocating process inside the ioctl; only a process it may not kill (oom_score_adj -1000)
 * gets ENOMEM. So the package asks first, as it refuses sizes over RAM: an allocation larger
 * than the room left under memory.max (this cgroup's or an ancestor's) is ENOMEM, typed, and
 * the process lives. The kernel stays the judge of anything this cannot see (other processes
 * charging the same group at the same moment, kernel memory). cgroup v2 only: v1's memory
 * controller has no mem_accounting charge to predict.
 */
import fs from 'node:fs';

/** A limit that leaves the least room, where it is. */
export interface MemcgRoom {
  /** bytes that may still be charged before memory.max */
  bytes: number;
  /** the cgroup directory whose memory.max is the tightest */
  group: string;
}

/** where cgroup2 is mounted, from mountinfo (`... - cgroup2 ...`); '' when it is not */
function cgroup2Mount(root: string): string {
  let info: string;
  try {
    info = fs.readFileSync(`${root}/proc/self/mountinfo`, 'latin1');
  } catch {
    return '';
  }
  for (const line of info.split('\n')) {
    const [left, right] = line.split(' - ');
    if (right?.startsWith('cgroup2 ')) return left.split(' ')[4] ?? '';
  }
  return '';
}

const readNumber = (file: string): number | undefined => {
  try {
    const text = fs.readFileSync(file, 'latin1').trim();
    return text === 'max' ? Infinity : Number(text);
  } catch {
    return undefined;
  }
};

/**
 * The least room any memory.max on the way from this process's cgroup up to the root leaves,
 * or undefined when nothing limits it (no cgroup2, no memory controller, every max 'max').
 * `root` prefixes the paths (tests).
 */
export function memcgRoom(root = ''): MemcgRoom | undefined {
  const mount = cgroup2Mount(root);
  if (!mount) return undefined;
  let own: string | undefined;
  try {
    own = /^0::(\/.*)$/m.exec(fs.readFileSync(`${root}/proc/self/cgroup`, 'latin1'))?.[1];
  } catch {
    return undefined;
  }
  if (own === undefined) return undefined;
  let tightest: MemcgRoom | undefined;
  for (let rel = own; ; rel = rel.slice(0, rel.lastIndexOf('/')) || '/') {
    const group = `${root}${mount}${rel === '/' ? '' : rel}`;
    const max = readNumber(`${group}/memory.max`);
    const current = readNumber(`${group}/memory.current`);
    if (max !== undefined && current !== undefined && max !== Infinity) {
      const bytes = Math.max(0, max - current);
      if (!tightest || bytes < tightest.bytes) tightest = { bytes, group: group.slice(root.length) };
    }
    if (rel === '/') return tightest;
  }
}
