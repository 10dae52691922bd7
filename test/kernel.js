#!/usr/bin/env node
// `npm run test:kernel`: the jest suite against a real 6.12 kernel, inside the qemu rig
// (test/vm/run.js). Results land in --out DIR (default .test-results/kernel), a folder the
// guest writes through a shared mount. Extra arguments go to jest.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const args = process.argv.slice(2);
const outIdx = args.indexOf('--out');
const out = path.resolve(outIdx >= 0 ? args[outIdx + 1] : path.join('.test-results', 'kernel'));
const jestArgs = outIdx >= 0 ? args.filter((_, i) => i !== outIdx && i !== outIdx + 1) : args;
fs.mkdirSync(out, { recursive: true });

const rig = path.join(__dirname, 'vm', 'run.js');
const runner = path.join(__dirname, 'run.js');
const r = spawnSync(
  process.execPath,
  [rig, '--timeout', '1500', '--out', out, '--modules', 'vgem,vivid', '--', process.execPath, runner, '--kernel', '--out', out, ...jestArgs],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
