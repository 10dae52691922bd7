// How run.js shows a JS/C ratio. The JS path makes the C reference's system calls and more, so
// JS/C under 0.5 is not a result but noise (one short run, a C cell that hit a page-cache miss
// or a preemption): such a ratio is marked, and a single run (--quick) is said to be one noisy
// sample before the table. The js tier is exempt: its C column is memfd, for scale only.
'use strict';

/** below this JS/C cannot be (the JS path does at least what C does) */
const SANE_RATIO = 0.5;

function shownRatio(ratio, tier) {
  if (!Number.isFinite(ratio)) return '-';
  return ratio < SANE_RATIO && tier !== 'js' ? `${ratio.toFixed(2)} (noise)` : ratio.toFixed(2);
}

/** the warning to print before the table, or undefined when there are runs enough to take a median of */
function fewRunsWarning(runs) {
  if (runs >= 3) return undefined;
  return `warning: ${runs} run(s) per cell: each figure is a single noisy sample (--quick is for seeing that it works), not a measurement; ratios below ${SANE_RATIO} are marked (noise). Use --runs 3 or more to compare.`;
}

module.exports = { SANE_RATIO, shownRatio, fewRunsWarning };
