/**
 * One way to skip (issue 18): test/helpers/skip.ts's testIf/describeIf, whose reason lands in
 * every skipped test's name, so `npm test` can list what was skipped and why. jest's own
 * test.skip, it.skip, describe.skip and the x-aliases skip without a reason; only the helper
 * may use them.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { skippedName, testIf } from './helpers/skip';

const TEST = __dirname;
const HELPER = path.join(TEST, 'helpers', 'skip.ts');

function files(dir = TEST): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' ? [] : files(full);
    return /\.(ts|js)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [full] : [];
  });
}

const JEST = new Set(['test', 'it', 'describe']);
const ALIASES = new Set(['xit', 'xtest', 'xdescribe']);

/** Every use of jest's own skips in `text` (code only: comments and strings are not uses), as `line: what`. */
function directSkips(file: string, text: string): string[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const out: string[] = [];
  const at = (node: ts.Node, what: string) => out.push(`${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}: ${what}`);
  const visit = (node: ts.Node) => {
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && JEST.has(node.expression.text) && node.name.text === 'skip') {
      at(node, `${node.expression.text}.skip`);
    } else if (
      ts.isElementAccessExpression(node) && ts.isIdentifier(node.expression) && JEST.has(node.expression.text) &&
      ts.isStringLiteralLike(node.argumentExpression) && node.argumentExpression.text === 'skip'
    ) {
      at(node, `${node.expression.text}['skip']`);
    } else if (ts.isIdentifier(node) && ALIASES.has(node.text)) {
      at(node, node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

test('no file under test/ skips with jest directly: testIf/describeIf (test/helpers/skip.ts) put the reason in the name', () => {
  const all = files();
  expect(all.length).toBeGreaterThan(50);
  const offenders = all
    .filter((f) => f !== HELPER)
    .flatMap((f) => directSkips(f, fs.readFileSync(f, 'utf8')).map((hit) => `${path.relative(TEST, f)}:${hit}`));
  expect(offenders).toEqual([]);
});

test('the check above can fail: it sees each direct skip, and not one in a comment or a string', () => {
  const sample = [
    "(cond ? describe : describe.skip)('a', () => {});",
    "test.skip('b', () => {});",
    "it.skip.each([1])('c %s', () => {});",
    "describe['skip']('d', () => {});",
    "xit('e', () => {}); xtest('f', () => {}); xdescribe('g', () => {});",
    "// test.skip in a comment, and 'describe.skip' in a string, are not skips",
  ].join('\n');
  expect(directSkips('sample.ts', sample)).toEqual([
    '1: describe.skip', '2: test.skip', '3: it.skip', "4: describe['skip']", '5: xit', '5: xtest', '5: xdescribe',
  ]);
  // and the helper is where they are
  expect(directSkips(HELPER, fs.readFileSync(HELPER, 'utf8')).length).toBeGreaterThan(0);
});

test('a skip always says why: the reason is required and goes into the name as " [skipped: <reason>]"', () => {
  expect(skippedName('a test', 'needs the native addon')).toBe('a test [skipped: needs the native addon]');
  expect(skippedName('', 'no vgem')).toBe('[skipped: no vgem]');
  expect(() => testIf(false, '')).toThrow(/reason/);
  expect(() => testIf(true, ' ')).toThrow(/reason/);
});
