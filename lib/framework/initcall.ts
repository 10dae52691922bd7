import type { Framework } from './framework';

/** A built-in driver's init function, run for every Framework made with builtins. */
export type Initcall = (fw: Framework) => void;

const initcalls: Initcall[] = [];

/**
 * module_init for the framework's built-in heaps: a heap module registers itself when it is
 * loaded (lib/framework/index.ts loads lib/framework/heaps/*), and every Framework made with
 * `builtins` runs the initcalls in load order, so framework.ts never imports a heap.
 */
export function moduleInit(fn: Initcall): void {
  initcalls.push(fn);
}

/** @internal the registered initcalls, in load order */
export function builtinInitcalls(): readonly Initcall[] {
  return initcalls;
}
