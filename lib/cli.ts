#!/usr/bin/env node
// The `dma-heap` command (package.json bin). The commands live in lib/cli/, one file each.
import { main } from './cli/main';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`dma-heap: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
