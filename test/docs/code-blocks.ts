import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * Every code block of README.md and examples/ is run or type-checked by
 * code-blocks.test.ts. This file finds them and says what each one is.
 *
 * A fenced block's info string is `<lang> [key=value | flag]...`; GitHub shows only the
 * language. What the test does with each language:
 *   ts   type-checked with `tsc --strict` against the built types, compiled (target ES2022)
 *        and run with node; an ES module (.mts) when it has import/export, else CommonJS.
 *   js   run with node: an ES module (.mjs) when it has import/export, else CommonJS (.cjs).
 *   sh   every command checked: `npm run X` exists, `npx dma-heap CMD` answers `CMD --help`,
 *        `node FILE` names a file of the checkout.
 *   text not code: sample output or a config file; never run.
 * Attributes:
 *   group=NAME  blocks of one group are written to one directory (one program of several files)
 *   file=NAME   the block's file name in its group; a group runs its one block without file=
 *   needs=addon the block must fail, mentioning the addon, when DMA_HEAP_ADDON=0
 *   needs=gstreamer the block runs gst-launch-1.0 (and needs the addon): it runs where the test
 *               rig's GStreamer root is (test/gstreamer/root.js; `gst-launch-1.0` on its PATH runs
 *               there), and is skipped, saying why, where it is not
 */
export interface CodeBlock {
  /** where it came from, e.g. README.md:123 or examples/camera.mjs */
  origin: string;
  lang: string;
  attrs: Record<string, string>;
  code: string;
  /** the file it is written to, relative to the workspace */
  file: string;
  /** run it (false for helper files of a group and for sh/text) */
  run: boolean;
  needsAddon: boolean;
  /** it runs gst-launch-1.0 (needs=gstreamer) */
  needsGstreamer: boolean;
}

const LANGS = new Set(['ts', 'js', 'sh', 'text']);

export function isModule(code: string): boolean {
  return /^\s*(import|export)\s/m.test(code);
}

function parseInfo(info: string): { lang: string; attrs: Record<string, string> } {
  const [lang = '', ...rest] = info.trim().split(/\s+/);
  const attrs: Record<string, string> = {};
  for (const word of rest) {
    const eq = word.indexOf('=');
    if (eq < 0) attrs[word] = 'true';
    else attrs[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return { lang, attrs };
}

/** The fenced blocks of a markdown text, in order, with the line each starts on. */
export function fencedBlocks(markdown: string): Array<{ info: string; code: string; line: number }> {
  const out: Array<{ info: string; code: string; line: number }> = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})(.*)$/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++) body.push(lines[i].slice(open[1].length));
    out.push({ info: open[3], code: body.join('\n') + '\n', line: start + 1 });
  }
  return out;
}

function extensionFor(lang: string, code: string): string {
  if (lang === 'ts') return isModule(code) ? '.mts' : '.ts';
  return isModule(code) ? '.mjs' : '.cjs';
}

/** README.md's blocks, as files under readme/ */
export function readmeBlocks(root: string, name = 'README.md'): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const prefix = name.replace(/\W+/g, '-').toLowerCase();
  for (const { info, code, line } of fencedBlocks(readFileSync(path.join(root, name), 'utf8'))) {
    const { lang, attrs } = parseInfo(info);
    const origin = `${name}:${line}`;
    if (!LANGS.has(lang)) {
      throw new Error(`${origin}: a code block needs one of the languages ${[...LANGS].join(', ')} (got ${JSON.stringify(info)})`);
    }
    const dir = path.join(prefix, attrs.group ?? `L${line}`);
    const file = path.join(dir, attrs.file ?? `main${extensionFor(lang, code)}`);
    blocks.push({
      origin,
      lang,
      attrs,
      code,
      file,
      run: (lang === 'ts' || lang === 'js') && attrs.file === undefined,
      needsAddon: attrs.needs === 'addon' || attrs.needs === 'gstreamer',
      needsGstreamer: attrs.needs === 'gstreamer',
    });
  }
  return blocks;
}

/** examples/: every .js/.mjs/.cjs/.ts file; helpers (run by another example) say so in their first line */
export function exampleBlocks(root: string): CodeBlock[] {
  const dir = path.join(root, 'examples');
  if (!existsSync(dir)) return [];
  const blocks: CodeBlock[] = [];
  for (const name of readdirSync(dir).sort()) {
    const ext = path.extname(name);
    if (!['.js', '.mjs', '.cjs', '.ts', '.mts'].includes(ext)) continue;
    const code = readFileSync(path.join(dir, name), 'utf8');
    const helper = /^\/\/ The \S+ side of \S+/.test(code); // e.g. "// The producer side of camera.mjs"
    blocks.push({
      origin: `examples/${name}`,
      lang: ext.endsWith('ts') ? 'ts' : 'js',
      attrs: {},
      code,
      file: path.join('examples', name),
      run: !helper,
      needsAddon: /^\/\/ Needs the native addon/m.test(code),
      needsGstreamer: false,
    });
  }
  return blocks;
}

export function ensureDir(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
}

/**
 * A scratch project in `ws` as a user has one: node_modules/dma-heap is the checkout at `root`
 * (built: `npm test` builds first) and @types/node is installed.
 */
export function userProject(ws: string, root: string): void {
  mkdirSync(path.join(ws, 'node_modules', '@types'), { recursive: true });
  symlinkSync(root, path.join(ws, 'node_modules', 'dma-heap'), 'dir');
  symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(ws, 'node_modules', '@types', 'node'), 'dir');
}

/** What the README tells TypeScript users to set (`using` on Node 20: target ES2022 + esnext.disposable), strict. */
export function userCompilerOptions(ws: string): ts.CompilerOptions {
  return {
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    types: ['node'],
    typeRoots: [path.join(ws, 'node_modules', '@types')],
  };
}
