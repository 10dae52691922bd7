#!/usr/bin/env node
// `npm test`: the jest suite twice on this host, as users meet it: with the native
// addon (real kernel where /dev/dma_heap exists, software framework on memfd) and
// without it (DMA_HEAP_ADDON=0: the software framework on JS memory, as on macOS).
// `--kernel` (the VM rig, or a board): the real kernel must be there; one run.
// `--only-addon`: just the addon run (CI uses it for the cmake-js build).
// Each run's jest --json lands in --out DIR (default .test-results); ends with every skipped
// test (its name carries the reason) and "N passed, N failed, N skipped".
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const kernel = args.includes('--kernel');
const onlyAddon = args.includes('--only-addon'); // e.g. to test another build of the addon
const outIdx = args.indexOf('--out');
const out = path.resolve(outIdx >= 0 ? args[outIdx + 1] : '.test-results');
const passThrough = args.filter((a, i) => !['--kernel', '--only-addon'].includes(a) && i !== outIdx && i !== outIdx + 1);
fs.mkdirSync(out, { recursive: true });

const jest = require.resolve('jest/bin/jest');
const runs = kernel
  ? [{ label: 'kernel', env: { DMA_HEAP_TEST_KERNEL: '1' } }]
  : [
      { label: 'addon', env: {} },
      ...(onlyAddon ? [] : [{ label: 'no-addon', env: { DMA_HEAP_ADDON: '0' } }]),
    ];

let passed = 0;
let failed = 0;
let skippedCount = 0;
let status = 0;
/** every skipped test, by run: its full name carries its reason (see test/helpers/expect.ts) */
const skipped = [];
for (const run of runs) {
  const file = path.join(out, `${run.label}.json`);
  fs.rmSync(file, { force: true });
  console.log(`\n=== jest: ${run.label} ===`);
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', jest, '--json', `--outputFile=${file}`, ...(kernel ? ['--runInBand'] : []), ...passThrough],
    { stdio: 'inherit', env: { ...process.env, ...run.env } },
  );
  let result;
  try {
    result = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    console.error(`jest (${run.label}) wrote no results (exit ${r.status}, signal ${r.signal})`);
    failed += 1;
    status = 1;
    continue;
  }
  passed += result.numPassedTests;
  failed += result.numFailedTests + result.numRuntimeErrorTestSuites;
  if (r.status !== 0 || !result.success || result.numTotalTests === 0) status = 1;
  console.log(`${run.label}: ${result.numPassedTests} passed, ${result.numFailedTests} failed, ${result.numPendingTests} skipped`);
  for (const suite of result.testResults ?? []) {
    for (const a of suite.assertionResults ?? []) {
      if (a.status !== 'pending' && a.status !== 'skipped' && a.status !== 'todo') continue;
      skipped.push(`  ${run.label}: ${path.relative(process.cwd(), suite.name)}: ${a.fullName}`);
    }
  }
  skippedCount += result.numPendingTests + (result.numTodoTests ?? 0);
}
// The last lines: what was skipped and why (a skip is a defect unless its reason holds), then the sums.
if (skipped.length) console.log(`\nskipped (the reason is in each name):\n${skipped.join('\n')}`);
console.log(`${passed} passed, ${failed} failed, ${skippedCount} skipped`);
process.exit(status);
