#!/usr/bin/env node
// `prepack` (npm pack / npm publish): refuse to make a tarball without every prebuild.
// A tarball without them installs with scripts blocked (npm 12) as the software fallback
// only, silently. Each file must exist and have the ELF header of its target (class,
// machine, ARM EABI5 hard-float, stripped); test/prebuilds/check.js proves the rest
// (symbol versions, loading on each target). `npm run prebuilds` makes them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { PREBUILDS, prebuildPath, readElf, elfProblems } = require('./targets');

const root = path.resolve(__dirname, '..', '..');
const problems = [];
for (const arch of Object.keys(PREBUILDS)) {
  const file = prebuildPath(root, arch);
  const rel = path.relative(root, file);
  if (!fs.existsSync(file)) {
    problems.push(`${rel} is missing`);
    continue;
  }
  const p = elfProblems(arch, readElf(file));
  if (p.length) problems.push(`${rel}: ${p.join('; ')}`);
}
// anything else in prebuilds/ would ship too, and node-gyp-build might pick it
const dir = path.join(root, 'prebuilds');
const expected = new Set(Object.keys(PREBUILDS).map((a) => path.relative(dir, prebuildPath(root, a))));
for (const sub of fs.existsSync(dir) ? fs.readdirSync(dir, { withFileTypes: true }) : []) {
  if (!sub.isDirectory()) continue;
  for (const f of fs.readdirSync(path.join(dir, sub.name))) {
    const rel = path.join(sub.name, f);
    if (f.endsWith('.node') && !expected.has(rel)) problems.push(`prebuilds/${rel} is not one of the prebuilds (stale? remove it)`);
  }
}
if (problems.length) {
  console.error(`dma-heap prepack: refusing to pack:\n  ${problems.join('\n  ')}\nRun \`npm run prebuilds\` (test/prebuilds/build.js) first.`);
  process.exit(1);
}
console.log(`dma-heap prepack: ${expected.size} prebuilds present (${[...expected].join(', ')})`);
