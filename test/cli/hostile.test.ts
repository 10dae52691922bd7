import { spawn } from 'node:child_process';
import path from 'node:path';

/*
 * The CLI against hostile input, spawned as users run it (`npm test` builds dist/ first): a
 * reader that goes away, buffer and process names that would drive a terminal or hide a
 * buffer, processes that exit mid-scan or hold thousands of fds, arguments it must refuse.
 * Runs wherever a heap exists: a real kernel's system heap, else the software framework's.
 */

const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json')) as { bin: Record<string, string> };
const CLI = path.join(root, pkg.bin['dma-heap']);
/** what a shell reports for a writer SIGPIPE killed; the CLI exits with it on EPIPE (lib/cli.ts) */
const BROKEN_PIPE = 141;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Run the CLI. `close`: when to close our end of its stdout, 'start' (before it can have
 * written: node takes far longer to start than this takes to close) or 'first-chunk'.
 */
function cli(args: string[], options: { close?: 'start' | 'first-chunk'; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env });
    const out: Buffer[] = [];
    let stderr = '';
    if (options.close === 'start') child.stdout.destroy();
    child.stdout.on('data', (d: Buffer) => {
      out.push(d);
      if (options.close === 'first-chunk') child.stdout.destroy();
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
  });
}

describe('a reader that goes away ends the CLI quietly, with the status of a SIGPIPE', () => {
  test.each([[['--help']], [['--version']], [['list']], [['list', '--json']], [['dump']], [['dump', '--json']], [['dump', '1', '--json']], [['demo', '--json']], [['alloc', '4k']]])(
    'stdout closed before it writes: %j',
    async (args) => {
      const r = await cli(args, { close: 'start' });
      expect(r).toMatchObject({ code: BROKEN_PIPE, signal: null, stderr: '' });
    },
  );
});
