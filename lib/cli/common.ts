/**
 * What the CLI's commands share: the command shape, usage errors, sizes, owners.
 * Only node: modules and the package's public API; no command reaches into internals.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ParseArgsConfig } from 'node:util';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export interface Command {
  name: string;
  /** one line, for the command list */
  summary: string;
  /** the usage lines after `dma-heap` */
  usage: string;
  /** the text of `dma-heap <name> --help` after the usage */
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** whether positionals are allowed */
  positionals?: boolean;
  /** returns the exit status (or a promise of it) */
  run(values: Record<string, unknown>, positionals: string[], io: Io): number | Promise<number>;
}

/** A mistake in how the command was called: message on stderr, exit status 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** What the package says when it refuses an argument (lib/errors.ts), not when it fails. */
const ARGUMENT_ERRORS = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE']);

/**
 * Call the package with values the user typed: its refusing one (a 32-byte --name, --heap
 * ../x) is a usage mistake, exit 2 with the usage line; ENOMEM, EACCES... stay failures.
 * Only around such calls: the same codes from anywhere else would be the CLI's own bug.
 */
export function withUserValues<T>(call: () => T): T {
  try {
    return call();
  } catch (err) {
    if (ARGUMENT_ERRORS.has(errorCode(err))) throw new UsageError((err as Error).message);
    throw err;
  }
}

/** `--json` is everywhere; `-h/--help` too. */
export const COMMON_OPTIONS = {
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export function packageVersion(): string {
  // dist/cli/ (built) and lib/cli/ (ts-jest) are both two levels below the package root
  const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export function packageRoot(): string {
  return path.join(__dirname, '..', '..');
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** "4096", "64k", "4M", "4MiB", "1.5G" -> bytes (binary units). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) throw new UsageError(`not a size: "${text}" (use bytes or a unit: 4096, 64k, 4M, 1G)`);
  const bytes = Number(m[1]) * UNITS[m[2].toLowerCase()];
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`not a whole positive number of bytes: "${text}"`);
  return bytes;
}

export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return '?';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** uid/gid -> name from /etc/passwd and /etc/group (Node has no getpwuid); the number if unknown */
function idNames(file: string): Map<number, string> {
  const names = new Map<number, string>();
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (name && id !== undefined && /^\d+$/.test(id) && !names.has(Number(id))) names.set(Number(id), name);
    }
  } catch {
    // No such file (a container, not Linux): numbers it is.
  }
  return names;
}

let users: Map<number, string> | undefined;
let groups: Map<number, string> | undefined;

export function userName(uid: number): string {
  users ??= idNames('/etc/passwd');
  return users.get(uid) ?? String(uid);
}

export function groupName(gid: number): string {
  groups ??= idNames('/etc/group');
  return groups.get(gid) ?? String(gid);
}

/** `crw-rw----` from a stat mode */
export function modeString(mode: number): string {
  const type = (mode & 0o170000) === 0o020000 ? 'c' : (mode & 0o170000) === 0o040000 ? 'd' : (mode & 0o170000) === 0o060000 ? 'b' : '-';
  const bits = 'rwxrwxrwx';
  let s = type;
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : '-';
  return s;
}

export function errorCode(err: unknown): string {
  return (err as { code?: string })?.code ?? 'ERROR';
}

/** a table: columns padded to their widest cell */
export function table(rows: string[][], indent = '  '): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
}
