/**
 * A timeout of any finite length. Node's setTimeout holds at most 2^31-1 ms: a longer delay
 * warns TimeoutOverflowWarning and fires after 1 ms, so a caller's `timeout: 2 ** 31` would
 * end a wait at once. Longer delays are waited in legs, re-arming until the whole delay passed.
 */

/** the longest delay one setTimeout honours */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimer {
  /** never fire; idempotent */
  clear(): void;
}

/**
 * Call `fn` once after `ms` (finite, >= 0; the caller validates). `unref`: the timer does not
 * keep the event loop alive (as a fence that signals by itself must not).
 */
export function longTimeout(fn: () => void, ms: number, options: { unref?: boolean } = {}): LongTimer {
  let remaining = ms;
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const leg = Math.min(remaining, MAX_TIMER_MS);
    remaining -= leg;
    timer = setTimeout(remaining > 0 ? arm : fn, leg);
    if (options.unref) timer.unref();
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
