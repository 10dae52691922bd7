#!/usr/bin/env node
// `prepare`: build dist/ (npm runs it on `npm install` in a checkout, and for a dependency
// given as a git URL or a folder). npm installs a git dependency's devDependencies before its
// prepare, but a folder (`npm install ../dma-heap`, linked; or packed with --install-links) gets
// none of its dependencies: TypeScript was missing and the install stopped at `tsc: not found`
// (issue 18). Then this installs them there from the lockfile first, as npm does for a git
// dependency; that `npm ci` runs this file again, which now finds TypeScript and builds.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');

/** the npm that runs this script (npm_execpath), not whichever npm is first on PATH */
function npm(args) {
  const cli = process.env.npm_execpath;
  const r = cli
    ? spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: 'inherit' })
    : spawnSync('npm', args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function hasTypeScript() {
  try {
    require.resolve('typescript/package.json', { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

if (hasTypeScript()) {
  npm(['run', 'build']);
} else {
  console.error(`dma-heap prepare: TypeScript is not installed in ${root} (npm links a folder without its dependencies): installing them there (npm ci) to build dist/`);
  // --prefix and --no-global: an `npm install -g <folder>` passes its config down in the environment
  npm(['ci', '--include=dev', '--no-global', `--prefix=${root}`, '--no-audit', '--no-fund']);
}
