/**
 * dma-heap [command] [options]: the command line. One file per command; this one parses
 * the command and its options (util.parseArgs, strict), prints help on stdout (exit 0),
 * usage mistakes on stderr (exit 2), failures on stderr (exit 1). With --json, stdout holds
 * one JSON document or nothing: errors stay text on stderr, help and version become JSON.
 * Messages may quote what the user typed: they are printed through shown() (escape.ts).
 */
import { parseArgs } from 'node:util';
import { alloc } from './alloc';
import { bench } from './bench';
import { UsageError, packageVersion, type Command, type Io } from './common';
import { demo } from './demo';
import { jsonText, shown } from '../escape';
import { dump } from './dump';
import { list } from './list';
import { closest } from '../suggest';
import { backendChoice } from '../chooser';

export const COMMANDS: readonly Command[] = [demo, list, dump, alloc, bench];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'usage: dma-heap [command] [options]',
    '',
    'Linux dma-buf heaps for Node.js: what this machine has, who holds what, and a quick try.',
    '',
    'commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'options (every command):',
    '  --json        machine-readable output on stdout',
    '  -h, --help    this help, or a command\'s: dma-heap <command> --help',
    '',
    '  -v, --version the package version (alone: dma-heap --version)',
    '',
    'environment: DMA_HEAP_BACKEND=kernel|software, DMA_HEAP_ADDON=0 (refuse the addon),',
    '             NODE_DEBUG=dma-heap (what the package decides, on stderr)',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return `usage: dma-heap ${c.usage}\n\n${c.help}`;
}

/**
 * parseArgs's "Unknown option '--jsno'. To specify a positional argument starting with a '-',
 * place it at the end of the command after '--'..." advises what a typo never needs: say
 * which option it is not, and which one it probably is.
 */
function unknownOption(parseArgsMessage: string, command: Command): string {
  const option = /'([^']*)'/.exec(parseArgsMessage)?.[1];
  if (option === undefined) return parseArgsMessage;
  const names = Object.entries(command.options).flatMap(([long, o]) => [`--${long}`, ...(o.short ? [`-${o.short}`] : [])]);
  const guess = closest(option, names);
  return `unknown option '${option}'${guess ? `; did you mean '${guess}'?` : ''}`;
}

/** Run the CLI with these arguments; resolves to the exit status. */
export async function main(argv: string[], io: Io = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) }): Promise<number> {
  const first = argv[0];
  const end = argv.indexOf('--');
  const json = (end < 0 ? argv : argv.slice(0, end)).includes('--json');
  if (first === '-h' || first === '--help' || first === 'help') {
    const c = COMMANDS.find((x) => x.name === argv[1]);
    io.out(json ? jsonText({ usage: c ? `dma-heap ${c.usage}` : 'dma-heap [command] [options]', help: c ? c.help : usage() }, 2) : c ? commandHelp(c) : usage());
    return 0;
  }
  if (first === '-v' || first === '--version') {
    io.out(json ? jsonText({ version: packageVersion() }) : packageVersion());
    return 0;
  }
  let command: Command | undefined;
  let rest: string[];
  if (first === undefined || first.startsWith('-')) {
    command = demo; // `dma-heap` and `dma-heap --json` run the demo
    rest = argv;
  } else {
    command = COMMANDS.find((c) => c.name === first);
    rest = argv.slice(1);
  }
  if (!command) {
    const guess = closest(first, COMMANDS.map((c) => c.name));
    io.err(`dma-heap: unknown command "${shown(first)}"${guess ? `; did you mean '${guess}'?` : ''}\n\n${usage()}`);
    return 2;
  }
  try {
    // the library's own check of DMA_HEAP_BACKEND, for every command: list and alloc never
    // consulted it (they name their backend), so a typo was ignored there and fatal in demo
    backendChoice({});
  } catch (err) {
    io.err(`dma-heap: ${shown((err as Error).message)}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    if (values.help) {
      io.out(json ? jsonText({ usage: `dma-heap ${command.usage}`, help: command.help }, 2) : commandHelp(command));
      return 0;
    }
    if (positionals.length && !command.positionals) throw new UsageError(`${command.name} takes no arguments, got ${positionals.join(' ')}`);
    return await command.run(values as Record<string, unknown>, positionals, io);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof UsageError || e.code?.startsWith('ERR_PARSE_ARGS')) {
      const message = e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? unknownOption(e.message, command) : e.message;
      io.err(`dma-heap ${command.name}: ${shown(message)}\nusage: dma-heap ${command.usage}`);
      return 2;
    }
    io.err(`dma-heap ${command.name}: ${shown(e.message)}${e.code && !e.message.includes(e.code) ? ` (${e.code})` : ''}`);
    return 1;
  }
}
