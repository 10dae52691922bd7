/**
 * The one token that lets the package's own code call a constructor users must not call: Heap,
 * DmaBuf, SyncFile, PooledBuffer, DmaBufChannel, DmaBufServer. Each is made by a factory
 * (openHeap, heap.alloc, DmaBufChannel.connect...) that first opens or checks what the object
 * needs; a bare `new Heap()` would have nothing behind it.
 *
 * Why a token and not an "internal" doc tag on the constructor: stripInternal drops such a
 * constructor from the .d.ts, and TypeScript then sees the implicit public no-argument one, so
 * `new Heap()` compiled and crashed inside. Here the constructor stays in the .d.ts, its first
 * parameter typed `typeof INTERNAL_CONSTRUCTOR`: the package index never exports the symbol
 * (and package.json's `exports` closes dist/ to require), so no user can name or pass it, and
 * `new Heap()` does not compile. From JavaScript it throws ERR_ILLEGAL_CONSTRUCTOR before
 * anything is opened; so does `super(...)` in a subclass, which cannot supply it either.
 */
export const INTERNAL_CONSTRUCTOR: unique symbol = Symbol('dma-heap internal constructor');

export type IllegalConstructorError = TypeError & { code: 'ERR_ILLEGAL_CONSTRUCTOR' };

/** Throw ERR_ILLEGAL_CONSTRUCTOR (as Node's own classes do) unless `token` is the package's.
 *  `use` says what to call instead, e.g. 'openHeap()'. */
export function checkConstructorToken(token: unknown, use: string): void {
  if (token === INTERNAL_CONSTRUCTOR) return;
  const err = new TypeError(`Illegal constructor: use ${use}`) as IllegalConstructorError;
  err.code = 'ERR_ILLEGAL_CONSTRUCTOR';
  throw err;
}
