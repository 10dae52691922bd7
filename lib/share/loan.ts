/**
 * Buffers lent across a process boundary, both sides. Between processes a buffer is lent, not
 * given: the borrower says when it is done, and the lender's pool gets it back.
 *
 * - The borrower's side, `Borrowed`: what was received must be given back exactly once, whether
 *   the program releases it, closes it, leaves a `using` block, or forgets it (the garbage
 *   collector). While any of its buffers is reachable, so is the loan: a program that keeps only
 *   a plane's DmaBuf does not have the frame given back under it.
 * - The lender's side, `Loans`: what is out, with which holders (a GStreamer sink lends one
 *   buffer to every client at once), and what to do when the last holder gives it back or goes
 *   away.
 *
 * DmaBufChannel's lent messages and the unixfd elements (GStreamer's protocol) share both.
 */

/** Closable things a loan owns (DmaBufs, SyncFiles). */
export interface Closable {
  close(): void;
}

/** once-only state, shared by release() and the finalizer (which must not hold the owner) */
interface State {
  done: boolean;
  giveBack: () => void;
}

/** giveBack must not throw; if it does anyway, a finalizer's throw would be an uncaught exception */
function tell(state: State): void {
  try {
    state.giveBack();
  } catch {
    // The lender is told nothing more: the loan still counts as given back here.
  }
}

const forgotten = new FinalizationRegistry<State>((state) => {
  if (state.done) return;
  state.done = true;
  tell(state);
});

/** item -> the object that owns its loan: an ephemeron, so a reachable item keeps the loan alive */
const owners = new WeakMap<object, object>();

/** The borrower's side of one loan: `release()` closes what was lent and gives it back, once. */
export class Borrowed {
  readonly #state: State;
  readonly #items: readonly Closable[];

  /**
   * @param owner the object the program holds (a message, a frame): when it and every item are
   *   unreachable, the loan is given back by the garbage collector
   * @param items what was received: closed by release()
   * @param giveBack tells the lender (sends the release); called exactly once, and must not throw
   */
  constructor(owner: object, items: readonly Closable[], giveBack: () => void) {
    this.#state = { done: false, giveBack };
    // a copy: the owner's own array (a message's `items`) is the program's to edit, and an item
    // taken out of it must still be closed by release()
    this.#items = [...items];
    for (const item of items) owners.set(item, owner);
    forgotten.register(owner, this.#state, this.#state);
  }

  /** whether it was given back */
  get released(): boolean {
    return this.#state.done;
  }

  /** Close the items and give the loan back; false (and nothing done) when it already was. */
  release(): boolean {
    const state = this.#state;
    if (state.done) return false;
    state.done = true;
    forgotten.unregister(state);
    for (const item of this.#items) {
      try {
        item.close();
      } catch {
        // A closed item is no reason to keep the lender waiting.
      }
    }
    tell(state);
    return true;
  }
}

/**
 * The lender's side: each id lent to a set of holders; `returned` runs once, when the last
 * holder gave it back or went away (or at once, lent to nobody).
 */
export class Loans<Id, Holder> {
  readonly #out = new Map<Id, { holders: Set<Holder>; returned: () => void }>();

  /** how many loans are out */
  get size(): number {
    return this.#out.size;
  }

  /** whether `id` is out (with anyone) */
  has(id: Id): boolean {
    return this.#out.has(id);
  }

  /** Lend `id` to `holders`; an id already out is the caller's bug (it throws). */
  lend(id: Id, holders: Iterable<Holder>, returned: () => void): void {
    if (this.#out.has(id)) throw new Error(`loan ${String(id)} is already out`);
    const set = new Set(holders);
    if (set.size === 0) {
      returned();
      return;
    }
    this.#out.set(id, { holders: set, returned });
  }

  /** `holder` gives `id` back; false when it does not hold it (never lent it, or given back already). */
  giveBack(id: Id, holder: Holder): boolean {
    const loan = this.#out.get(id);
    if (!loan || !loan.holders.delete(holder)) return false;
    if (loan.holders.size === 0) {
      this.#out.delete(id);
      loan.returned();
    }
    return true;
  }

  /** `holder` went away: everything it held counts as given back. */
  dropHolder(holder: Holder): void {
    for (const [id, loan] of [...this.#out]) if (loan.holders.has(holder)) this.giveBack(id, holder);
  }

  /** Everything is given back (the lender closes). */
  clear(): void {
    const all = [...this.#out.values()];
    this.#out.clear();
    // every one is told, even when an earlier `returned` throws (the first throw is rethrown after)
    let thrown: { err: unknown } | null = null;
    for (const loan of all) {
      try {
        loan.returned();
      } catch (err) {
        thrown ??= { err };
      }
    }
    if (thrown) throw thrown.err;
  }
}
