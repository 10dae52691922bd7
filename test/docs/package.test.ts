import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/*
 * What `npm pack` would publish, without publishing: the built JS and types (no stale files
 * from an older layout, no @internal members), the CLI, the examples and docs; no tests.
 * (`npm test` builds first; the build starts from an empty dist/.)
 */

const root = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json'));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = path.join(dir, e);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

let files: string[] = [];
beforeAll(async () => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = await run(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, maxBuffer: 16 << 20 });
  files = (JSON.parse(r.stdout)[0].files as Array<{ path: string }>).map((f) => f.path);
}, 300_000);

test('the tarball has the built package, its types, the CLI, examples and docs, and no tests', () => {
  for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist/index.js', 'dist/index.d.ts', 'binding.gyp']) {
    expect(files).toContain(f);
  }
  expect(files).toContain(pkg.bin['dma-heap'].replace(/^\.\//, ''));
  expect(files).toContain('dist/cli/main.js');
  expect(files.filter((f) => f.startsWith('examples/')).length).toBeGreaterThan(3);
  expect(files.filter((f) => f.startsWith('test/') || f.startsWith('lib/'))).toEqual([]);
});

test('every file in dist/ comes from a source in lib/ (no stale files of an older layout)', () => {
  const stale = walk(path.join(root, 'dist'))
    .map((f) => path.relative(path.join(root, 'dist'), f))
    .filter((f) => !existsSync(path.join(root, 'lib', f.replace(/(\.d\.ts|\.js)$/, '.ts'))));
  expect(stale).toEqual([]);
});

test('the exports map serves the package and its package.json, types first', () => {
  expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
  expect(Object.keys(pkg.exports['.'])[0]).toBe('types');
  expect(pkg.exports['./package.json']).toBe('./package.json');
});

test('the published types carry no @internal members', () => {
  const leaks = walk(path.join(root, 'dist'))
    .filter((f) => f.endsWith('.d.ts'))
    .filter((f) => readFileSync(f, 'utf8').includes('@internal'))
    .map((f) => path.relative(root, f));
  expect(leaks).toEqual([]);
});
