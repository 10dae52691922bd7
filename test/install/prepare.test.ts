import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/*
 * Issue 18: `npm install <folder>` links a fresh clone without installing any of its
 * dependencies, then runs its prepare, which stopped at `tsc: not found`. Here prepare runs
 * as npm runs it, in a copy of the package with no node_modules and no TypeScript on PATH.
 * A stand-in npm records what it is asked and does `npm ci`'s part offline (links this
 * checkout's node_modules, then runs the package's prepare with the real npm); `run` goes to
 * the real npm. The build must then leave dist/cli.js executable (tsc writes 0644: `npx
 * dma-heap` said Permission denied), starting with its #! line.
 */

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-prepare-'));
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'lib', 'test/install/prepare.js']) {
    cpSync(path.join(root, f), path.join(dir, 'pkg', f), { recursive: true });
  }
  writeFileSync(
    path.join(dir, 'npm.js'),
    `const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
let args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(path.join(dir, 'npm.log'))}, JSON.stringify(args) + '\\n');
if (args[0] === 'ci') {
  fs.symlinkSync(${JSON.stringify(path.join(root, 'node_modules'))}, 'node_modules', 'junction');
  args = ['run', 'prepare'];
}
const r = spawnSync('npm', args, { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(r.status ?? 1);
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('prepare in a folder without its dependencies installs them (npm ci) and builds an executable CLI', () => {
  const PATH = (process.env.PATH ?? '').split(path.delimiter).filter((p) => !p.includes('node_modules')).join(path.delimiter);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH, npm_execpath: path.join(dir, 'npm.js') };
  delete env.NODE_PATH;
  const r = spawnSync(pkg.scripts.prepare, { cwd: path.join(dir, 'pkg'), env, shell: true, encoding: 'utf8' });
  expect(r.stderr).not.toMatch(/not found/);
  expect(r.status).toBe(0);
  const asked = readFileSync(path.join(dir, 'npm.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)[0]);
  expect(asked[0]).toBe('ci');
  const cli = path.join(dir, 'pkg', pkg.bin['dma-heap']);
  expect(readFileSync(cli, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  if (process.platform !== 'win32') expect(statSync(cli).mode & 0o111).toBe(0o111);
}, 120_000);
