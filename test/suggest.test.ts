import { closest } from '../lib/suggest';

// "did you mean": typos (a swap counts as one edit) find their name; unrelated words find none
test.each([
  ['sytem', ['system', 'default_cma_region', 'reserved'], 'system'],
  ['lsit', ['demo', 'list', 'dump', 'alloc', 'bench'], 'list'],
  ['--jsno', ['--json', '--help', '-h'], '--json'],
  ['alloc', ['demo', 'list', 'dump', 'alloc', 'bench'], 'alloc'],
  ['frobnicate', ['demo', 'list', 'dump', 'alloc', 'bench'], undefined],
  ['-x', ['--json', '--help', '-h'], undefined],
  ['nope', [], undefined],
])('closest(%p, %p) is %p', (word, names, expected) => {
  expect(closest(word, names)).toBe(expected);
});
