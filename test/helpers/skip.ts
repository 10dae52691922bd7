// The one way a test or a block is skipped (issue 18): `testIf(cond, reason)` and
// `describeIf(cond, reason)`. When `cond` is false the test (or every test in the block) is
// reported as skipped with ` [skipped: <reason>]` in its name, so jest's output, its --json and
// the skip list test/run.js and test/kernel.js print all say why. The reason is required.
// Tests that need a device the kernel row may declare use testWith/describeWith (expect.ts),
// which skip through here. test/skips.test.ts keeps jest's own skips out of the other files.

/** a test() that runs only when its condition held; `.each` as jest's */
export interface ConditionalTest {
  (name: string, fn: () => unknown, timeout?: number): void;
  each: jest.Each;
}

/** a describe() whose tests run only when its condition held; `.each` as jest's */
export interface ConditionalDescribe {
  (name: string, fn: () => void): void;
  each: jest.Each;
}

/** jest's .each, seen from a wrapper that hands its table through untouched */
type EachOf<F> = (...table: unknown[]) => (name: string, fn: F, timeout?: number) => void;

function checked(reason: string): string {
  if (typeof reason !== 'string' || reason.trim() === '') throw new TypeError('a skip needs its reason: testIf/describeIf(cond, reason)');
  return reason;
}

/** `name [skipped: reason]` (just the tag for an empty name) */
export function skippedName(name: string, reason: string): string {
  const tag = `[skipped: ${checked(reason)}]`;
  return name ? `${name} ${tag}` : tag;
}

/** the same for a `.each` title: a `%` in the reason is not a placeholder */
const skippedTitle = (name: string, reason: string) => skippedName(name, checked(reason).replaceAll('%', '%%'));

/** `testIf(addon !== null, 'needs the native addon')('name', fn)`: a test that runs only when `cond` holds */
export function testIf(cond: boolean, reason: string): ConditionalTest {
  checked(reason);
  if (cond) {
    const run = (name: string, fn: () => unknown, timeout?: number) => test(name, fn as jest.ProvidesCallback, timeout);
    return Object.assign(run, { each: test.each });
  }
  const skip = (name: string) => test.skip(skippedName(name, reason), () => undefined);
  const each = (...table: unknown[]) => (name: string, fn: (...args: unknown[]) => unknown, timeout?: number) =>
    (test.skip.each as EachOf<(...args: unknown[]) => unknown>)(...table)(skippedTitle(name, reason), fn, timeout);
  return Object.assign(skip, { each: each as unknown as jest.Each });
}

/**
 * `describeIf(canShare, 'sharing needs the native addon')('name', () => {...})`: a block whose
 * tests run only when `cond` holds. Skipped, its body still runs to define the tests (as with
 * describe.skip), and each of them is reported with the reason in its full name.
 */
export function describeIf(cond: boolean, reason: string): ConditionalDescribe {
  checked(reason);
  if (cond) return Object.assign((name: string, fn: () => void) => describe(name, fn), { each: describe.each });
  const skip = (name: string, fn: () => void) => describe.skip(skippedName(name, reason), fn);
  const each = (...table: unknown[]) => (name: string, fn: (...args: unknown[]) => void, timeout?: number) =>
    (describe.skip.each as EachOf<(...args: unknown[]) => void>)(...table)(skippedTitle(name, reason), fn, timeout);
  return Object.assign(skip, { each: each as unknown as jest.Each });
}
