/**
 * lib/share/loan.ts on its own (no fds, no addon: both modes run it): Borrowed gives a loan back
 * exactly once whichever way it is reached, and is kept alive by any of its items; Loans tells
 * each lent id's `returned` once, when its last holder gives it back or goes away.
 */
import { Borrowed, Loans } from '../../lib/share/loan';
import { gcUntil } from '../helpers/fds';

class Item {
  closes = 0;
  close(): void {
    this.closes++;
    if (this.closes > 1) throw new Error('closed twice');
  }
}

describe('Borrowed', () => {
  test('release() closes every item and gives back once; later calls do nothing', () => {
    const items = [new Item(), new Item()];
    let given = 0;
    const loan = new Borrowed({}, items, () => given++);
    expect(loan.released).toBe(false);
    expect(loan.release()).toBe(true);
    expect(loan.release()).toBe(false);
    expect(loan.released).toBe(true);
    expect(items.map((i) => i.closes)).toEqual([1, 1]);
    expect(given).toBe(1);
  });

  test('an item that throws on close (closed already) does not keep the lender waiting', () => {
    const bad = { close: () => { throw new Error('already closed'); } };
    const good = new Item();
    let given = 0;
    new Borrowed({}, [bad, good], () => given++).release();
    expect(good.closes).toBe(1);
    expect(given).toBe(1);
  });

  test('release() closes what was lent even when the owner\'s array was edited', () => {
    const a = new Item();
    const items = [a];
    const loan = new Borrowed({}, items, () => undefined);
    items.length = 0; // the program's array (a message's `items`)
    loan.release();
    expect(a.closes).toBe(1);
  });

  test('a giveBack that throws is contained: release() still counts, and does not throw', () => {
    const loan = new Borrowed({}, [], () => {
      throw new Error('lender gone');
    });
    expect(loan.release()).toBe(true);
    expect(loan.released).toBe(true);
  });

  test('the garbage collector gives back a loan whose owner and items are unreachable, once', async () => {
    let given = 0;
    (() => {
      const owner = {};
      new Borrowed(owner, [new Item()], () => given++);
    })();
    expect(await gcUntil(() => given > 0)).toBe(true);
    await gcUntil(() => false, 3);
    expect(given).toBe(1);
  });

  test('a reachable item keeps the loan (an ephemeron): given back only once the item goes too', async () => {
    let given = 0;
    let kept: Item | null = (() => {
      const item = new Item();
      new Borrowed({}, [item, new Item()], () => given++);
      return item;
    })();
    expect(await gcUntil(() => given > 0, 5)).toBe(false);
    expect(kept.closes).toBe(0);
    kept = null;
    expect(await gcUntil(() => given > 0)).toBe(true);
    expect(given).toBe(1);
  });

  test('released by hand, the loan is not given back again by the garbage collector; a throwing giveBack in a finalizer is no uncaught exception', async () => {
    let given = 0;
    let thrown = 0;
    (() => {
      const owner = {};
      const loan = new Borrowed(owner, [], () => given++);
      loan.release();
      new Borrowed({}, [], () => {
        thrown++;
        throw new Error('from a finalizer');
      });
    })();
    expect(await gcUntil(() => thrown > 0)).toBe(true);
    await gcUntil(() => false, 3);
    expect(given).toBe(1);
  });
});

describe('Loans', () => {
  test('returned runs once, when the last holder gives the id back; giving back twice or unknown ids is false', () => {
    const loans = new Loans<number, string>();
    const back: number[] = [];
    loans.lend(1, ['a', 'b'], () => back.push(1));
    expect(loans.has(1)).toBe(true);
    expect(loans.size).toBe(1);
    expect(loans.giveBack(1, 'a')).toBe(true);
    expect(loans.giveBack(1, 'a')).toBe(false);
    expect(back).toEqual([]);
    expect(loans.giveBack(1, 'b')).toBe(true);
    expect(back).toEqual([1]);
    expect(loans.giveBack(1, 'b')).toBe(false);
    expect(loans.giveBack(2, 'a')).toBe(false);
    expect(loans.size).toBe(0);
    expect(back).toEqual([1]);
  });

  test('an id already out is refused; lent to nobody it is returned at once', () => {
    const loans = new Loans<number, string>();
    loans.lend(1, ['a'], () => undefined);
    expect(() => loans.lend(1, ['b'], () => undefined)).toThrow(/already out/);
    let back = 0;
    loans.lend(2, [], () => back++);
    expect(back).toBe(1);
    expect(loans.has(2)).toBe(false);
  });

  test('dropHolder gives back everything that holder held; clear() returns the rest, once each', () => {
    const loans = new Loans<number, string>();
    const back: number[] = [];
    loans.lend(1, ['a'], () => back.push(1));
    loans.lend(2, ['a', 'b'], () => back.push(2));
    loans.lend(3, ['b'], () => back.push(3));
    loans.dropHolder('a');
    expect(back).toEqual([1]);
    loans.clear();
    expect(back.sort()).toEqual([1, 2, 3]);
    expect(loans.size).toBe(0);
    loans.clear();
    expect(back.length).toBe(3);
  });

  test('clear() tells every loan even when one returned callback throws, then rethrows', () => {
    const loans = new Loans<number, string>();
    const back: number[] = [];
    loans.lend(1, ['a'], () => {
      throw new Error('boom');
    });
    loans.lend(2, ['a'], () => back.push(2));
    expect(() => loans.clear()).toThrow('boom');
    expect(back).toEqual([2]);
    expect(loans.size).toBe(0);
  });
});
