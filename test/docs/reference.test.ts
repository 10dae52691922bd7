import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { userCompilerOptions, userProject } from './code-blocks';

/*
 * The API reference (issue 18, item 3): `npm run docs` (typedoc over the `dma-heap` and
 * `dma-heap/framework` entry points, typedoc.json) must build, and typedoc.json makes an export
 * without documentation, a link to nothing or a public type that is not exported a failure
 * (`validation` with `treatWarningsAsErrors`). What typedoc does not check, this test does, on
 * the reference's own JSON: every function, method and constructor reachable from the two entry
 * points (declared in lib/; what a class inherits from Node's EventEmitter is Node's) has
 *
 * - a `@param` for each parameter,
 * - `@returns` unless it returns void, Promise<void> or `this` (or is a constructor),
 * - `@throws` naming what it throws: an error class (DmaHeapError, DmaBufStateError, TypeError,
 *   RangeError, Error with its `code`, AbortError...), or beginning "Nothing" when nothing can be
 *   thrown (say why, e.g. "Nothing: a second close() does nothing"),
 * - `@example` with a code block.
 *
 * Two kinds need only their summary, `@param` and `@returns`: methods of an interface (what a
 * heap, a backing or a policy of your own implements, and the simulated kernel's system calls:
 * their contract, with the example on the type), and the EventEmitter methods DmaBufChannel and
 * DmaBufServer re-declare only to type their events (Node's behaviour; the events are documented
 * on DmaBufChannelEvents / DmaBufServerEvents).
 *
 * Host-only (test/kernel.js leaves test/docs/ out of the VM rows); needs no network.
 */

const root = path.resolve(__dirname, '..', '..');
const run = promisify(execFile);
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json'));

/** the re-declared EventEmitter methods (see above) */
const EVENT_METHODS = new Set(['on', 'once', 'off', 'addListener', 'prependListener', 'prependOnceListener', 'removeListener', 'emit']);
/** where they are re-declared: DmaBufChannel's file and DmaBufServer's */
const EVENT_FILES = new Set(['lib/share/channel.ts', 'lib/share/server.ts', 'lib/share/unixfd/source.ts', 'lib/share/unixfd/sink.ts', 'lib/watch.ts']);

// typedoc's ReflectionKind values (typedoc/dist/lib/models/kind.js)
const KIND = { Function: 64, Class: 128, Interface: 256, Constructor: 512, Method: 2048, Accessor: 262144 } as const;

interface Part {
  kind: string;
  text: string;
}
interface Comment {
  summary: Part[];
  blockTags?: Array<{ tag: string; content: Part[] }>;
}
interface Type {
  type: string;
  name?: string;
  typeArguments?: Type[];
}
interface Signature {
  name: string;
  kind: number;
  comment?: Comment;
  parameters?: Array<{ name: string; comment?: Comment }>;
  type?: Type;
  sources?: Array<{ fileName: string }>;
}
interface Reflection {
  name: string;
  kind: number;
  children?: Reflection[];
  signatures?: Signature[];
  sources?: Array<{ fileName: string }>;
  inheritedFrom?: unknown;
}

const text = (parts: Part[] | undefined) => (parts ?? []).map((p) => p.text).join('').trim();

/** the returns-nothing types: no @returns needed */
function returnsNothing(t: Type | undefined): boolean {
  if (!t) return true;
  if (t.type === 'intrinsic' && (t.name === 'void' || t.name === 'undefined' || t.name === 'never')) return true;
  if (t.type === 'intrinsic' && t.name === 'this') return true;
  if (t.type === 'reference' && t.name === 'Promise' && t.typeArguments?.length === 1) return returnsNothing(t.typeArguments[0]);
  return false;
}

/** what one signature lacks, as short words; [] when it has everything its kind needs */
function missing(sig: Signature, ctx: { full: boolean }): string[] {
  const out: string[] = [];
  const comment = sig.comment;
  if (!comment || !text(comment.summary)) out.push('summary');
  for (const p of sig.parameters ?? []) if (!p.comment || !text(p.comment.summary)) out.push(`@param ${p.name}`);
  const tags = comment?.blockTags ?? [];
  const tag = (name: string) => tags.filter((t) => t.tag === name);
  if (sig.kind !== 16384 /* constructor signature */ && !returnsNothing(sig.type) && !tag('@returns').some((t) => text(t.content))) out.push('@returns');
  if (!ctx.full) return out;
  const throws = tag('@throws').map((t) => text(t.content));
  if (!throws.length) out.push('@throws');
  else if (!throws.every((t) => /^Nothing\b/.test(t) || /\b(\w*Error|Errno)\b/.test(t))) out.push('@throws naming an error class (or "Nothing")');
  if (!tag('@example').some((t) => t.content.some((p) => p.kind === 'code' && p.text.startsWith('```')))) out.push('@example with a code block');
  return out;
}

/** every function, method and constructor signature declared in lib/, with its path and whether it needs every tag */
function signatures(project: Reflection): Array<{ where: string; sig: Signature; full: boolean }> {
  const out: Array<{ where: string; sig: Signature; full: boolean }> = [];
  const walk = (r: Reflection, where: string, parent: number | undefined) => {
    const here = where ? `${where}.${r.name}` : r.name;
    if (r.kind === KIND.Function || r.kind === KIND.Method || r.kind === KIND.Constructor) {
      for (const sig of r.signatures ?? []) {
        const file = (sig.sources ?? r.sources ?? [])[0]?.fileName ?? '';
        if (!file.startsWith('lib/')) continue; // inherited from Node's types
        const full = parent !== KIND.Interface && !(r.kind === KIND.Method && EVENT_METHODS.has(r.name) && EVENT_FILES.has(file));
        out.push({ where: here, sig, full });
      }
    }
    for (const c of r.children ?? []) walk(c, here, r.kind);
  };
  for (const c of project.children ?? []) walk(c, '', undefined);
  return out;
}

let dir = '';
let project: Reflection;
let built: { code: number; output: string };

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-reference-'));
  // `npm run docs` is `typedoc`: run it as that script does, with its config, writing the HTML
  // and the JSON here instead of docs/api (a test leaves the checkout alone).
  const bin = path.join(root, 'node_modules', 'typedoc', 'bin', 'typedoc');
  try {
    const r = await run(process.execPath, [bin, '--out', path.join(dir, 'html'), '--json', path.join(dir, 'api.json')], { cwd: root, maxBuffer: 64 << 20 });
    built = { code: 0, output: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    built = { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
  if (built.code === 0) project = JSON.parse(readFileSync(path.join(dir, 'api.json'), 'utf8'));
}, 300_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('`npm run docs` is typedoc over typedoc.json: both entry points, warnings as errors', () => {
  expect(pkg.scripts.docs).toBe('typedoc');
  const config = JSON.parse(readFileSync(path.join(root, 'typedoc.json'), 'utf8'));
  expect(config.entryPoints).toEqual(['lib/index.ts', 'lib/framework/index.ts']);
  expect(config.treatWarningsAsErrors).toBe(true);
  expect(config.validation).toEqual({ notExported: true, invalidLink: true, notDocumented: true });
});

test('the reference builds: every export documented, every link resolves (typedoc exits 0)', () => {
  // the output names each undocumented export, bad link or unexported type
  // eslint-disable-next-line no-control-regex
  const lines = built.output.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
  expect({ code: built.code, warnings: lines.filter((l) => /warning|error/i.test(l)) }).toEqual({ code: 0, warnings: [] });
});

test('every public function, method and constructor has @param for each parameter, @returns, @throws and @example', () => {
  expect(built.code).toBe(0);
  const sigs = signatures(project);
  expect(sigs.length).toBeGreaterThan(100); // the walk found the API (openHeap, DmaBuf's methods...)
  expect(sigs.map((s) => s.where)).toEqual(expect.arrayContaining(['dma-heap.openHeap', 'dma-heap.DmaBuf.map', 'dma-heap/framework.Framework.constructor']));
  const lacking = sigs.flatMap(({ where, sig, full }) => {
    const m = missing(sig, { full });
    return m.length ? [`${where}: ${m.join(', ')}`] : [];
  });
  expect(lacking).toEqual([]);
});

test('the check can fail: a signature without tags is reported', () => {
  const bare: Signature = { name: 'f', kind: 4096, parameters: [{ name: 'x' }], type: { type: 'intrinsic', name: 'number' }, comment: { summary: [{ kind: 'text', text: 'f.' }] } };
  expect(missing(bare, { full: true })).toEqual(['@param x', '@returns', '@throws', '@example with a code block']);
  const vague: Signature = { ...bare, parameters: [], comment: { summary: bare.comment!.summary, blockTags: [{ tag: '@returns', content: [{ kind: 'text', text: 'n' }] }, { tag: '@throws', content: [{ kind: 'text', text: 'sometimes' }] }] } };
  expect(missing(vague, { full: true })).toEqual(['@throws naming an error class (or "Nothing")', '@example with a code block']);
});

/** every @example's code block in the reference, with where it is */
function examples(r: unknown, where = ''): Array<{ where: string; code: string }> {
  const out: Array<{ where: string; code: string }> = [];
  const visit = (node: unknown, at: string) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node)) return node.forEach((n) => visit(n, at));
    const o = node as Record<string, unknown>;
    const here = typeof o.name === 'string' && typeof o.kind === 'number' ? (at ? `${at}.${o.name}` : o.name) : at;
    const tags = ((o.comment as { blockTags?: Array<{ tag: string; content: Array<{ kind: string; text: string }> }> } | undefined)?.blockTags ?? []).filter((t) => t.tag === '@example');
    for (const t of tags) {
      for (const p of t.content) {
        const m = p.kind === 'code' ? /^```(?:ts|typescript)\n([\s\S]*?)```$/.exec(p.text.trim()) : null;
        if (m) out.push({ where: here, code: m[1] });
      }
    }
    for (const [k, v] of Object.entries(o)) if (k !== 'comment') visit(v, here);
  };
  visit(r, where);
  return out;
}

test('every @example type-checks with --strict against the built package, as a user would paste it', () => {
  expect(built.code).toBe(0);
  const found = examples(project);
  expect(found.length).toBeGreaterThan(50);
  const ws = path.join(dir, 'examples');
  userProject(ws, root);
  const files = found.map((e, i) => {
    const file = path.join(ws, `ex${String(i).padStart(3, '0')}.mts`);
    // a fragment that imports nothing still is a module (its names are its own)
    writeFileSync(file, /^\s*import\s/m.test(e.code) ? e.code : `export {};\n${e.code}`);
    return { ...e, file };
  });
  const program = ts.createProgram(
    files.map((f) => f.file),
    { ...userCompilerOptions(ws), noEmit: true },
  );
  const failing = ts.getPreEmitDiagnostics(program).flatMap((d) => {
    const f = files.find((x) => x.file === d.file?.fileName);
    return f ? [`${f.where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`] : [];
  });
  expect(failing).toEqual([]);
}, 120_000);
