import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/*
 * The README is a guide with a table of contents (issue 18); the test matrix, the rig, CI and
 * the bench method live in TESTING.md. Here: every link of the README's "Contents" reaches a
 * heading, every `##` heading is in it, and every relative link of README.md and TESTING.md
 * (and every #anchor, in the same file or another) reaches something that exists. Anchors are
 * GitHub's: the heading's text, lower case, punctuation dropped, spaces to hyphens.
 */

const root = path.resolve(__dirname, '..', '..');
const DOCS = ['README.md', 'TESTING.md'];

/** the markdown without fenced code blocks and inline code spans' backticks */
function prose(markdown: string): string[] {
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of markdown.split('\n')) {
    const open = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence !== undefined) {
      if (line.trimStart().startsWith(fence)) fence = undefined;
      continue;
    }
    if (open) {
      fence = open[1];
      continue;
    }
    out.push(line);
  }
  return out;
}

/** GitHub's anchor for a heading's text (github-slugger), without the -1, -2 of repeats */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // [text](url) -> text
    .replace(/`/g, '')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
    .replace(/ /g, '-');
}

interface Doc {
  headings: Array<{ level: number; text: string; anchor: string }>;
  links: string[];
  lines: string[];
}

function read(name: string): Doc {
  const lines = prose(readFileSync(path.join(root, name), 'utf8'));
  const seen = new Map<string, number>();
  const headings = lines.flatMap((line) => {
    const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) return [];
    const base = slug(m[2]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return [{ level: m[1].length, text: m[2], anchor: n ? `${base}-${n}` : base }];
  });
  return { headings, links: linksOf(lines), lines };
}

function linksOf(lines: string[]): string[] {
  const text = lines.map((l) => l.replace(/`[^`]*`/g, 'x')).join('\n');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
}

const docs = new Map(DOCS.map((name) => [name, read(name)]));

test("the README's contents: every link reaches a heading, every ## heading is listed", () => {
  const readme = docs.get('README.md')!;
  const lines = readme.lines;
  const start = lines.findIndex((l) => /^## Contents\s*$/.test(l));
  expect(start).toBeGreaterThan(-1);
  const end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  const toc = linksOf(lines.slice(start + 1, end));
  const anchors = new Set(readme.headings.map((h) => `#${h.anchor}`));
  expect(toc.filter((l) => !anchors.has(l))).toEqual([]);
  const sections = readme.headings.filter((h) => h.level === 2 && h.text !== 'Contents').map((h) => `#${h.anchor}`);
  expect(sections.length).toBeGreaterThan(10);
  expect(sections.filter((a) => !toc.includes(a))).toEqual([]);
});

test.each(DOCS)('%s: every relative link and #anchor reaches something that exists', (name) => {
  const broken: string[] = [];
  for (const link of docs.get(name)!.links) {
    if (/^[a-z]+:/i.test(link)) continue; // https:, mailto:
    const [file, anchor] = link.split('#', 2);
    const target = file ? path.normalize(path.join(path.dirname(name), file)) : name;
    if (!existsSync(path.join(root, target))) {
      broken.push(`${link}: no file ${target}`);
      continue;
    }
    if (anchor === undefined) continue;
    const doc = docs.get(target) ?? (target.endsWith('.md') ? read(target) : undefined);
    if (!doc) broken.push(`${link}: an anchor into a file that is not markdown`);
    else if (!doc.headings.some((h) => h.anchor === anchor)) broken.push(`${link}: no heading #${anchor} in ${target}`);
  }
  expect(broken).toEqual([]);
});

test('the slugs are GitHub\'s', () => {
  expect(slug('`using` (explicit resource management)')).toBe('using-explicit-resource-management');
  expect(slug("Running this README's examples")).toBe('running-this-readmes-examples');
  expect(slug('The software framework (`dma-heap/framework`)')).toBe('the-software-framework-dma-heapframework');
  expect(slug('sync_files between processes')).toBe('sync_files-between-processes');
  expect(slug('Fence waits: what a careless or hostile caller can and cannot do')).toBe(
    'fence-waits-what-a-careless-or-hostile-caller-can-and-cannot-do',
  );
});

// TESTING.md's commands are not run by code-blocks.test.ts (README and examples/ only): at least
// the npm scripts and files they name must exist.
test('TESTING.md: every npm script and node file its shell blocks name exists', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const md = readFileSync(path.join(root, 'TESTING.md'), 'utf8');
  const missing: string[] = [];
  for (const block of md.matchAll(/^```sh\n([\s\S]*?)^```/gm)) {
    for (const line of block[1].split('\n')) {
      const words = line.replace(/(^|\s)#.*$/, '').trim().split(/\s+/).filter((w) => w && !/^[A-Z_]+=/.test(w));
      if (words[0] === 'npm' && words[1] === 'run' && !pkg.scripts[words[2]]) missing.push(line);
      if (words[0] === 'node' && !existsSync(path.join(root, words.find((w, i) => i > 0 && !w.startsWith('-')) ?? ''))) missing.push(line);
    }
  }
  expect(missing).toEqual([]);
});
