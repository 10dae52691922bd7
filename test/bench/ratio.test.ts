// eslint-disable-next-line @typescript-eslint/no-var-requires
const { fewRunsWarning, shownRatio } = require('./ratio');

// `bench --quick` printed JS/C 0.01 from one noisy run as if it were a result (issue 18)
test('a JS/C ratio the JS path cannot reach is marked as noise, except against the js tier (memfd for scale)', () => {
  expect(shownRatio(0.01, 'dma-heap')).toBe('0.01 (noise)');
  expect(shownRatio(0.49, 'memfd')).toBe('0.49 (noise)');
  expect(shownRatio(1.07, 'dma-heap')).toBe('1.07');
  expect(shownRatio(0.2, 'js')).toBe('0.20');
  expect(shownRatio(NaN, 'udmabuf')).toBe('-');
});

test('fewer than 3 runs (--quick is 1) print a warning that the figures are single noisy samples', () => {
  expect(fewRunsWarning(1)).toMatch(/single noisy sample/);
  expect(fewRunsWarning(3)).toBeUndefined();
});
