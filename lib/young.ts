/**
 * Objects made since the last turn of the event loop, handed to `promote` on that turn unless
 * their owner has dropped them by then. Most buffers are closed in the turn that made them, and
 * whatever is watched for being forgotten (a FinalizationRegistry target, a WeakRef) survives V8's
 * minor GCs: watching every buffer at once had nearly all of them promoted to old space. The
 * newest one, dropped, leaves at once (alloc, use, close), so no dead buffer is kept through a
 * scavenge; when MAX_WAITING wait, all are promoted at once, so a loop that never yields holds
 * none strongly for long. node:timers' setImmediate: a test's fake timers must not stop it.
 */
import { setImmediate } from 'node:timers';

const MAX_WAITING = 1024;

export class YoungObjects<T> {
  readonly #waiting: T[] = [];
  readonly #promote: (item: T) => void;
  #turn: NodeJS.Immediate | null = null;

  constructor(promote: (item: T) => void) {
    this.#promote = promote;
  }

  add(item: T): void {
    this.#waiting.push(item);
    if (this.#waiting.length >= MAX_WAITING) this.#promoteAll();
    else
      this.#turn ??= setImmediate(() => {
        this.#turn = null;
        this.#promoteAll();
      }).unref();
  }

  /** `item` is done with: true if it was the newest one waiting (gone now, never promoted) */
  drop(item: T): boolean {
    if (this.#waiting[this.#waiting.length - 1] !== item) return false;
    this.#waiting.pop();
    return true;
  }

  /** the ones still waiting */
  get waiting(): readonly T[] {
    return this.#waiting;
  }

  #promoteAll(): void {
    for (const item of this.#waiting) this.#promote(item);
    this.#waiting.length = 0;
  }
}
