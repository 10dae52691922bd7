/**
 * fd and gc helpers for tests, in one place: count and list this process's fds, read an fd's
 * flags, force garbage collection and wait for finalizers. Leak checks compare two openFds().
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

/** how many fds this process has open (Linux) */
export const fdCount = (): number => readdirSync('/proc/self/fd').length;

/** fds open in this process now (Linux); the fd readdir itself used is closed by the time we readlink, so it drops out */
export function openFds(): Set<number> {
  return new Set(readdirSync('/proc/self/fd').map(Number).filter((fd) => fdTarget(fd) !== ''));
}

export function fdTarget(fd: number): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return '';
  }
}

/** the fds opened since `before` */
export function newFds(before: Set<number>): number[] {
  return [...openFds()].filter((fd) => !before.has(fd));
}

export const isOpen = (fd: number): boolean => existsSync(`/proc/self/fd/${fd}`);

/** an fd's open flags, from fdinfo (octal) */
export const fdFlags = (fd: number): number =>
  parseInt(/^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);

/** a full garbage collection (--expose-gc, or turned on here) */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g();
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

export const tick = (): Promise<void> => new Promise<void>((r) => setImmediate(r));

/** GC until cond() holds (finalizers run from a later immediate), or give up */
export async function gcUntil(cond: () => boolean, rounds = 20): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    gc();
    await tick();
    await tick();
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

/**
 * openFds() once it stops changing: a baseline for a leak check that also counts closes. Earlier
 * test files in the same jest worker may leave garbage whose finalizers close fds (forgotten
 * buffers, frameworks): collect it first, then wait until two reads 100 ms apart agree.
 */
export async function settledFds(): Promise<Set<number>> {
  let prev = openFds();
  for (let i = 0; i < 50; i++) {
    gc();
    await tick();
    await tick();
    await new Promise((r) => setTimeout(r, 100));
    const now = openFds();
    if (now.size === prev.size && [...now].every((fd) => prev.has(fd))) return now;
    prev = now;
  }
  return prev;
}
