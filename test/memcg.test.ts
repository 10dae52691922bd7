/**
 * Issue 19, item 3: the room a process has under memory.max (lib/memcg.ts), read from a scratch
 * tree (mountinfo, /proc/self/cgroup, a cgroup2 hierarchy). The 7.x row proves the rest on the
 * real kernel: test/kernel/mem-accounting.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chargeInFlight, memcgRoom } from '../lib/memcg';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-memcg-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const put = (file: string, data: string) => {
  fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  fs.writeFileSync(path.join(root, file), data);
};
const MOUNTINFO = '22 1 0:21 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n';

test('no cgroup2 mount, or no cgroup line: no limit known', () => {
  expect(memcgRoom(root)).toBeUndefined();
  put('proc/self/mountinfo', '21 1 0:20 / /proc rw - proc proc rw\n');
  put('proc/self/cgroup', '0::/app\n');
  expect(memcgRoom(root)).toBeUndefined();
});

test("every max 'max' (or no memory controller): no limit", () => {
  put('proc/self/mountinfo', MOUNTINFO);
  put('proc/self/cgroup', '0::/user.slice/app\n');
  put('sys/fs/cgroup/user.slice/app/memory.max', 'max\n');
  put('sys/fs/cgroup/user.slice/app/memory.current', '4096\n');
  fs.mkdirSync(path.join(root, 'sys/fs/cgroup/user.slice'), { recursive: true }); // no memory.* files: controller off
  expect(memcgRoom(root)).toBeUndefined();
});

test('the tightest limit on the way up wins: its room and its group', () => {
  put('proc/self/mountinfo', MOUNTINFO);
  put('proc/self/cgroup', '0::/user.slice/app\n');
  put('sys/fs/cgroup/user.slice/app/memory.max', String(64 << 20));
  put('sys/fs/cgroup/user.slice/app/memory.current', String(10 << 20));
  put('sys/fs/cgroup/user.slice/memory.max', String(32 << 20));
  put('sys/fs/cgroup/user.slice/memory.current', String(30 << 20));
  expect(memcgRoom(root)).toEqual({ bytes: 2 << 20, group: '/sys/fs/cgroup/user.slice' });
  put('sys/fs/cgroup/user.slice/memory.max', 'max');
  expect(memcgRoom(root)).toEqual({ bytes: 54 << 20, group: '/sys/fs/cgroup/user.slice/app' });
});

test('over the limit already (current > max after a lowered max): no room, never negative', () => {
  put('proc/self/mountinfo', MOUNTINFO);
  put('proc/self/cgroup', '0::/app\n');
  put('sys/fs/cgroup/app/memory.max', '1000');
  put('sys/fs/cgroup/app/memory.current', '5000');
  expect(memcgRoom(root)).toEqual({ bytes: 0, group: '/sys/fs/cgroup/app' });
});

test('a process in the root group: the root has no memory.max, nothing limits', () => {
  put('proc/self/mountinfo', MOUNTINFO);
  put('proc/self/cgroup', '0::/\n');
  fs.mkdirSync(path.join(root, 'sys/fs/cgroup'), { recursive: true });
  expect(memcgRoom(root)).toBeUndefined();
});

test("page cache and reclaimable slab count as room: the kernel reclaims them before it would OOM-kill", () => {
  put('proc/self/mountinfo', MOUNTINFO);
  put('proc/self/cgroup', '0::/svc\n');
  put('sys/fs/cgroup/svc/memory.max', String(64 << 20));
  put('sys/fs/cgroup/svc/memory.current', String(64 << 20));
  put('sys/fs/cgroup/svc/memory.stat', `anon ${4 << 20}\nfile ${50 << 20}\nkernel 0\nslab_reclaimable ${2 << 20}\nslab_unreclaimable 4096\n`);
  expect(memcgRoom(root)).toEqual({ bytes: 52 << 20, group: '/sys/fs/cgroup/svc' });
});

test("this process's accounted allocations in flight are counted until they settle", () => {
  put('proc/self/mountinfo', MOUNTINFO);
  put('proc/self/cgroup', '0::/app\n');
  put('sys/fs/cgroup/app/memory.max', String(100 << 20));
  put('sys/fs/cgroup/app/memory.current', '0');
  const first = chargeInFlight(40 << 20);
  const second = chargeInFlight(40 << 20);
  expect(memcgRoom(root)?.bytes).toBe(20 << 20);
  first();
  first(); // once only
  expect(memcgRoom(root)?.bytes).toBe(60 << 20);
  second();
  expect(memcgRoom(root)?.bytes).toBe(100 << 20);
});

test("a mount showing part of the hierarchy (a cgroup namespace, a bind of a subtree): the group is found under it; mount points with escaped spaces", () => {
  put('proc/self/mountinfo', '30 1 0:21 /ct /run/my\\040cg rw - cgroup2 cgroup2 rw\n');
  put('proc/self/cgroup', '0::/ct/job\n');
  put('run/my cg/job/memory.max', String(8 << 20));
  put('run/my cg/job/memory.current', String(1 << 20));
  put('run/my cg/memory.max', String(1 << 30)); // the mount's root: the namespace's top, still a limit
  put('run/my cg/memory.current', '0');
  expect(memcgRoom(root)).toEqual({ bytes: 7 << 20, group: '/run/my cg/job' });
});

test('our group outside every cgroup2 mount (unshare -C without a remount): unknown, not a wrong group', () => {
  put('proc/self/mountinfo', '30 1 0:21 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n');
  put('proc/self/cgroup', '0::/ct/job\n');
  expect(memcgRoom(root)).toBeUndefined();
  put('proc/self/cgroup', '0::/../..\n');
  expect(memcgRoom(root)).toBeUndefined();
});
