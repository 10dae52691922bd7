import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { ensureDir, exampleBlocks, readmeBlocks, userCompilerOptions, userProject, type CodeBlock } from './code-blocks';
import { cachedGstRoot, gstEnv, gstUnavailable } from '../gstreamer/root';
import { testIf } from '../helpers/skip';

/*
 * Every code block of README.md and every file of examples/ runs or type-checks here, the
 * way a user meets it: in a scratch directory whose node_modules/dma-heap is this checkout
 * (built: `npm test` builds first), so the code says `require('dma-heap')` / `from 'dma-heap'`.
 * TypeScript is checked with --strict against the built .d.ts files, compiled to ES2022
 * (which turns `using` into try/finally) and run on this Node. See code-blocks.ts for the
 * info-string conventions.
 */

const root = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);
// The public surface, as built: which run is this (with or without the addon)?
// eslint-disable-next-line @typescript-eslint/no-var-requires
const addonLoaded: boolean = require(path.join(root, 'dist', 'index.js')).addonStatus().loaded;

const blocks: CodeBlock[] = [...readmeBlocks(root), ...exampleBlocks(root)];
if (existsSync(path.join(root, 'examples', 'README.md'))) blocks.push(...readmeBlocks(root, 'examples/README.md'));

let ws = '';
let diagnostics: readonly ts.Diagnostic[] = [];
let compilerOptions: ts.CompilerOptions = {};
const emitted = new Map<string, string>(); // block file -> the JS file to run

function jsOf(file: string): string {
  return file.replace(/\.mts$/, '.mjs').replace(/\.ts$/, '.js');
}

beforeAll(() => {
  ws = mkdtempSync(path.join(tmpdir(), 'dma-heap-docs-'));
  userProject(ws, root);
  for (const b of blocks) {
    const file = path.join(ws, b.file);
    ensureDir(file);
    writeFileSync(file, b.code);
  }
  const tsFiles = blocks.filter((b) => b.lang === 'ts').map((b) => path.join(ws, b.file));
  // type tests: checked with the blocks, never run (test/docs/types/)
  for (const name of readdirSync(path.join(__dirname, 'types'))) {
    const file = path.join(ws, 'types', name);
    ensureDir(file);
    copyFileSync(path.join(__dirname, 'types', name), file);
    tsFiles.push(file);
  }
  compilerOptions = {
    ...userCompilerOptions(ws),
    skipLibCheck: false, // the published .d.ts files are checked too
    noEmitOnError: false,
  };
  const program = ts.createProgram(tsFiles, compilerOptions);
  const emit = program.emit();
  diagnostics = [...ts.getPreEmitDiagnostics(program), ...emit.diagnostics];
  for (const b of blocks) emitted.set(b.file, path.join(ws, b.lang === 'ts' ? jsOf(b.file) : b.file));
}, 600_000); // one tsc program over every block: minutes under qemu TCG

afterAll(() => {
  if (ws) rmSync(ws, { recursive: true, force: true });
});

test('the README and examples/ have code blocks of every kind this test handles', () => {
  const langs = new Set(blocks.map((b) => b.lang));
  expect([...langs].sort()).toEqual(expect.arrayContaining(['js', 'sh', 'ts']));
  expect(blocks.filter((b) => b.run).length).toBeGreaterThan(5);
});

test('every TypeScript block (and test/docs/types/) type-checks with --strict against the built types', () => {
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => ws,
    getNewLine: () => '\n',
  };
  const text = ts.formatDiagnostics(diagnostics, host);
  // name each file by where it came from
  const named = blocks.reduce((t, b) => t.split(b.file).join(`${b.file} (${b.origin})`), text);
  expect(named).toBe('');
});

test('they type-check the same in a CommonJS project with classic resolution (module commonjs, node10)', () => {
  // What many existing projects have: `dma-heap/framework` must resolve without an exports-aware
  // resolver (package.json typesVersions), and nothing else may need nodenext.
  const files = [...blocks.filter((b) => b.lang === 'ts' && !b.file.endsWith('.mts')).map((b) => path.join(ws, b.file)), ...readdirSync(path.join(ws, 'types')).filter((n) => n.endsWith('.ts')).map((n) => path.join(ws, 'types', n))];
  const program = ts.createProgram(files, { ...compilerOptions, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, noEmit: true });
  const text = ts.formatDiagnostics(ts.getPreEmitDiagnostics(program), { getCanonicalFileName: (f) => f, getCurrentDirectory: () => ws, getNewLine: () => '\n' });
  expect(text).toBe('');
});

/**
 * needs=gstreamer blocks: `gst-launch-1.0` on their PATH is a shell script running the rig's
 * GStreamer root (chroot, its clean environment); the blocks' sockets are abstract, which a
 * chroot shares. Where there is no root (or no addon), they are skipped with the reason.
 */
const gstRoot = cachedGstRoot();
const gstMissing = !addonLoaded ? 'a GStreamer example needs the native addon' : gstUnavailable(gstRoot);
function gstPath(): string {
  const dir = path.join(ws, 'gst-bin');
  ensureDir(path.join(dir, 'gst-launch-1.0'));
  const exports = Object.entries(gstEnv()).map(([k, v]) => `export ${k}='${v}'`).join('\n');
  writeFileSync(path.join(dir, 'gst-launch-1.0'), `#!/bin/sh\n${exports}\nexec /usr/sbin/chroot '${gstRoot}' gst-launch-1.0 "$@"\n`, { mode: 0o755 });
  return `${dir}:${process.env.PATH ?? ''}`;
}

const runnable = blocks.filter((b) => b.run);
describe.each(runnable.map((b) => [b.origin, b] as const))('%s', (_origin, block) => {
  const expectation = block.needsAddon && !addonLoaded ? 'fails, naming the addon, without it' : 'runs and exits 0';
  const testOf = block.needsGstreamer ? testIf(gstMissing === null, gstMissing ?? 'runs') : test;
  testOf(`${block.lang} ${expectation}`, async () => {
    const file = emitted.get(block.file)!;
    const env = block.needsGstreamer ? { ...process.env, PATH: gstPath() } : process.env;
    const result = await run(process.execPath, [file], { cwd: path.dirname(file), env }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
    );
    if (block.needsAddon && !addonLoaded) {
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/addon/);
    } else {
      expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
      expect(result.stdout.length).toBeGreaterThan(0); // every example says what it did
    }
  });
});

// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json')) as { scripts: Record<string, string>; bin: Record<string, string> };
const NPM_BUILTINS = new Set(['install', 'test', 'pack', 'rebuild', 'ci', 'publish']);

/** Why a shell command of the README is wrong, or undefined when it is fine. */
async function checkCommand(cmd: string): Promise<string | undefined> {
  const words = cmd.trim().split(/\s+/).filter((w) => !/^[A-Z_]+=/.test(w)); // VAR=value prefixes
  if (words[0] === 'sudo') words.shift();
  const [head, sub, ...rest] = words;
  if (head === 'npm') {
    if (sub === 'run') return pkg.scripts[rest[0]] ? undefined : `no npm script ${rest[0]}`;
    if (sub === 'test' || NPM_BUILTINS.has(sub)) return undefined;
    return `unknown npm command ${sub}`;
  }
  if (head === 'npx' || head === 'dma-heap') {
    const args = head === 'npx' ? [sub, ...rest] : [head, sub, ...rest].slice(0);
    if (args[0] !== 'dma-heap') return `npx of something else: ${args[0]}`;
    const command = args[1];
    if (command === undefined || command.startsWith('-')) return undefined; // `dma-heap`, `dma-heap --help`
    const bin = path.join(root, pkg.bin['dma-heap']);
    try {
      await run(process.execPath, [bin, command, '--help']);
      return undefined;
    } catch (e) {
      return `dma-heap ${command} --help failed: ${(e as Error).message}`;
    }
  }
  if (head === 'node') {
    const file = [sub, ...rest].find((w) => !w.startsWith('-'));
    return file && existsSync(path.join(root, file)) ? undefined : `node ${file}: no such file in the checkout`;
  }
  return `a command this test does not know how to check: ${cmd}`;
}

const shell = blocks.filter((b) => b.lang === 'sh');
test.each(shell.map((b) => [b.origin, b] as const))('%s: every shell command exists', async (_origin, block) => {
  const problems: string[] = [];
  for (const line of block.code.split('\n')) {
    const cmd = line.replace(/(^|\s)#.*$/, '').trim();
    if (!cmd) continue;
    for (const part of cmd.split(/&&|\|\||;/)) {
      const why = await checkCommand(part);
      if (why) problems.push(why);
    }
  }
  expect(problems).toEqual([]);
});
