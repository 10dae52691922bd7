/**
 * "Did you mean ...?" for a mistyped name (a heap, a CLI command or option): the closest of
 * `names` by edit distance, counting a swap of two neighbours as one edit (`lsit`, `--jsno`),
 * if it is close enough to be the likely intent: at most a third of the word (at least 1), and
 * less than half of it (`-x` is not a typo of `-h`).
 */
export function closest(word: string, names: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const name of names) {
    const d = distance(word, name);
    if (d < bestDistance && 2 * d < word.length) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

/** optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}
