import { errnoOf, type ErrnoCode } from '../errors';
import { invalidArgType, invalidArgValue, validateBoolean, validateInteger, validateOptions } from '../args';
import { errno } from './errno';

/**
 * Fault injection for application tests, off by default. Faults strike in
 * dma_heap_buffer_alloc, after the ALLOC struct was validated and before the heap's allocate
 * op, so the error takes the same way back as a real one (copy-back included).
 */
export interface AllocationFault {
  /** only allocations from this heap (default: any heap) */
  heap?: string;
  /** fail the nth allocation counted from now (1 = the next one) */
  nth: number;
  /** fail every nth (n, 2n, 3n, ...) instead of once */
  every?: boolean;
  /** the errno to fail with (default ENOMEM) */
  code?: ErrnoCode;
}

interface Rule extends Required<Omit<AllocationFault, 'heap'>> {
  heap?: string;
  seen: number;
  spent: boolean;
}

/** A framework's fault injection (`framework.faults`): allocation failures and per-heap byte caps. Off until a rule or cap is set. */
export class Faults {
  private rules: Rule[] = [];
  private readonly caps = new Map<string, number>();
  private readonly usage = new Map<string, number>();
  private readonly accounts = new Map<string, HeapAccount>();

  /**
   * Fail an allocation; returns a function that removes the rule.
   *
   * @param fault `nth` (1: the next allocation), `every`, `code` (default ENOMEM), `heap`
   * @returns a function that removes the rule
   */
  failAllocation(fault: AllocationFault): () => void {
    fault = validateOptions(fault, ['heap', 'nth', 'every', 'code'], 'fault');
    const nth = validateInteger(fault.nth, 'fault.nth', 1, Number.MAX_SAFE_INTEGER);
    const every = validateBoolean(fault.every, 'fault.every', false);
    const code = fault.code === undefined ? 'ENOMEM' : fault.code; // null is no default
    if (typeof code !== 'string') throw invalidArgType('fault.code', 'of type string', code);
    if (errnoOf(code) === undefined) throw invalidArgValue('fault.code', code, 'is not an errno name');
    if (fault.heap !== undefined && typeof fault.heap !== 'string') throw invalidArgType('fault.heap', 'of type string', fault.heap);
    const rule: Rule = { heap: fault.heap, nth, every, code: code as ErrnoCode, seen: 0, spent: false }; // an errno name: errnoOf knows it
    this.rules.push(rule);
    return () => {
      this.rules = this.rules.filter((r) => r !== rule);
    };
  }

  /**
   * Cap the bytes a heap may have allocated at once (live buffers); past it, ENOMEM. null removes it.
   *
   * @param heap the heap's name
   * @param bytes the most bytes its live buffers may hold, or null for no cap
   */
  capBytes(heap: string, bytes: number | null): void {
    if (typeof heap !== 'string') throw invalidArgType('heap', 'of type string', heap);
    if (bytes === null) {
      this.caps.delete(heap);
      return;
    }
    this.caps.set(heap, validateInteger(bytes, 'bytes', 0, Number.MAX_SAFE_INTEGER));
  }

  /**
   * bytes allocated from a heap and not yet released
   *
   * @param heap the heap's name
   * @returns the bytes of its live buffers
   */
  bytesInUse(heap: string): number {
    return this.usage.get(heap) ?? 0;
  }

  /** remove every rule and cap (usage accounting stays) */
  clear(): void {
    this.rules = [];
    this.caps.clear();
  }

  /** @internal before ops->allocate */
  check(heap: string, len: bigint): void {
    for (const rule of this.rules) {
      if (rule.spent || (rule.heap !== undefined && rule.heap !== heap)) continue;
      rule.seen++;
      if (rule.every ? rule.seen % rule.nth === 0 : rule.seen === rule.nth) {
        if (!rule.every) rule.spent = true;
        throw errno(rule.code);
      }
    }
    const cap = this.caps.get(heap);
    if (cap !== undefined && BigInt(this.bytesInUse(heap)) + len > BigInt(cap)) throw errno('ENOMEM');
  }

  /** @internal the usage line of one heap, made once: each buffer points at it (not a closure each) */
  account(heap: string): HeapAccount {
    let account = this.accounts.get(heap);
    if (!account) this.accounts.set(heap, (account = new HeapAccount(this.usage, heap)));
    return account;
  }
}

/** @internal a heap's line in the usage accounting: a buffer is charged when made, uncharged when released */
export class HeapAccount {
  constructor(
    private readonly usage: Map<string, number>,
    readonly heap: string,
  ) {}

  charge(bytes: number): void {
    this.usage.set(this.heap, (this.usage.get(this.heap) ?? 0) + bytes);
  }

  uncharge(bytes: number): void {
    this.usage.set(this.heap, (this.usage.get(this.heap) ?? 0) - bytes);
  }
}
