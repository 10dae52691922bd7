import { readFileSync } from 'node:fs';
import path from 'node:path';

/*
 * package-lock.json's root entry repeats package.json's platform and dependency fields. When
 * they drift, `npm ci` refuses the lockfile and `npm install` rewrites it in every fresh clone
 * (issue 18: `os` had gained "android" in package.json only). Regenerate it with
 * `npm install --package-lock-only`.
 */

const root = path.resolve(__dirname, '..', '..');
const read = (f: string) => JSON.parse(readFileSync(path.join(root, f), 'utf8'));
const pkg = read('package.json');
const lock = read('package-lock.json').packages[''];

test.each(['name', 'version', 'os', 'engines', 'dependencies', 'devDependencies', 'bin'])('package-lock.json says what package.json says: %s', (field) => {
  expect(lock[field]).toEqual(pkg[field]);
});
