#!/usr/bin/env node
// The `dma-heap` command (package.json bin). The commands live in lib/cli/, one file each.
import { main } from './cli/main';

/*
 * A reader that went away (`dma-heap dump | head`) is not a failure worth a message. Tools that
 * write to it (cat, ls) die of SIGPIPE and the shell reports 128 + 13; Node ignores SIGPIPE and
 * gets EPIPE instead, so the CLI exits quietly with that same status, at once: nothing it would
 * still print can be read. A closed stderr is ignored: the output is on stdout.
 */
const EXIT_BROKEN_PIPE = 128 + 13;

process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(EXIT_BROKEN_PIPE);
  process.stderr.write(`dma-heap: cannot write the output: ${err.message}\n`);
  process.exit(1);
});
process.stderr.on('error', () => {});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`dma-heap: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
