// The benchmark scripts' command lines, with commander as the product CLI (cli/): what several
// scripts share (the seconds per figure, --json, a repeatable --only, --no-event-idx, counts), the
// value checks (the SDK's option specs, lib/util/options.ts: "1e3", "0x10", "1.5" for an integer
// are refused), and how a bad command line ends: one line on stderr naming the argument or flag and
// the values it accepts, exit status 2 (as `uvirtio`'s, cli/exit.ts). An unknown flag or a word too
// many is refused the same way; --help prints every argument with its unit and default, exit 0.
//
// Each script builds its program in an exported parseArgs(argv) (so test/unit/bench-args.test.ts
// checks the parsing without starting a benchmark) and runs it with cliArgs().

import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { int, type OptionSpec } from '../lib/util/options.js';

/** Exit status of a bad command line (as cli/exit.ts's EXIT.USAGE). */
export const EXIT_USAGE = 2;

/** The longest timed window a benchmark takes per figure (s): an hour. */
export const MAX_SECONDS = 3600;

/** A decimal number of seconds above 0 and at most MAX_SECONDS ("1.5"; "1e3", "0x10", "-1", "" do not fit). */
export const SECONDS: OptionSpec<number> = {
  expects: `a number of seconds above 0 and at most ${MAX_SECONDS} (e.g. 1.5)`,
  parse: (text) => {
    const n = /^[0-9]+(\.[0-9]+)?$/.test(text) ? Number(text) : NaN;
    return n > 0 && n <= MAX_SECONDS ? n : undefined;
  },
  fits: (v): v is number => typeof v === 'number' && v > 0 && v <= MAX_SECONDS,
};

/** An integer from `min` to `max` (the SDK's `int`), with its unit in the messages: "an integer from 0 to 10000 (µs)". */
export function intIn(min: number, max: number, unit?: string): OptionSpec<number> {
  const spec = int(min, max);
  return unit ? { ...spec, expects: `${spec.expects} (${unit})` } : spec;
}

/**
 * A commander value parser for `spec`: a value that does not fit becomes commander's "argument …
 * is invalid" error (naming the flag or argument and the value), followed by "`what` must be <the
 * accepted values>".
 */
export function valueOf<T>(what: string, spec: OptionSpec<T>): (text: string) => T {
  return (text: string): T => {
    const v = spec.parse(text);
    if (v === undefined) throw new InvalidArgumentError(`${what} must be ${spec.expects}`);
    return v;
  };
}

/**
 * A program for one script: its name, what it measures and, after the options, `usage` (how it is
 * run, e.g. through npm). Errors are thrown (CommanderError) rather than printed: cliArgs() prints
 * them; a test reads them.
 */
export function benchProgram(name: string, description: string, usage?: string): Command {
  const program = new Command(name)
    .description(description)
    .helpOption('-h, --help', 'print the arguments and options, and exit')
    .exitOverride()
    .configureOutput({ outputError: () => undefined });
  if (usage) program.addHelpText('after', `\n${usage}`);
  return program;
}

/** [seconds]: the timed window of each figure. */
export function secondsArgument(defaultSeconds: number, what = 'seconds per configuration'): Argument {
  return new Argument('[seconds]', `${what} (a number above 0, at most ${MAX_SECONDS})`)
    .argParser(valueOf('seconds', SECONDS)).default(defaultSeconds);
}

/** A positional count (cycles, rounds): an integer from `min` to `max`. */
export function countArgument(name: string, what: string, defaultValue: number, min = 1, max = 1_000_000): Argument {
  return new Argument(`[${name}]`, `${what} (an integer from ${min} to ${max})`)
    .argParser(valueOf(name, int(min, max))).default(defaultValue);
}

/** --json: one JSON line with every figure after the table. */
export function jsonOption(): Option {
  return new Option('--json', 'also print every figure as one JSON line at the end');
}

/** --no-event-idx: the driver without VIRTIO_F_EVENT_IDX (bench/net-stream.ts), for the net scripts. */
export function noEventIdxOption(): Option {
  return new Option('--no-event-idx', 'uvirtio without VIRTIO_F_EVENT_IDX (notifications by the flags alone; default: negotiated)');
}

/** A repeatable `flag <value>` taking one of `choices` each time (`--only c --only linux`); default: all. */
export function repeatableChoice<const T extends string>(flag: string, choices: readonly T[], description: string): Option {
  const one = (value: string, previous: T[]): T[] => {
    if (!(choices as readonly string[]).includes(value)) throw new InvalidArgumentError(`${flag.split(' ')[0]} must be one of ${choices.join(', ')}`);
    return [...previous, value as T];
  };
  return new Option(flag, `${description} (one of ${choices.join(', ')}; may be repeated)`).argParser(one).default([], 'all');
}

/**
 * Parses `argv` (the words after the script's path) with `program` and returns its options and
 * arguments. Throws CommanderError: exitCode EXIT_USAGE for a bad command line (unknown flag, a
 * value that does not fit, a word too many), 0 once --help was printed.
 */
export function parseWith(program: Command, argv: readonly string[]): { opts: Record<string, unknown>; args: unknown[] } {
  try {
    program.parse([...argv], { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode !== 0) throw new CommanderError(EXIT_USAGE, e.code, e.message);
    throw e;
  }
  return { opts: program.opts(), args: program.processedArgs };
}

/** A bad command line found after commander's own checks (an unknown vm-profile word, --only words no case has): CommanderError, exit 2. */
export function usageError(message: string): CommanderError {
  return new CommanderError(EXIT_USAGE, 'bench.invalidArgument', `error: ${message}`);
}

/**
 * The script's arguments: `parse(process.argv.slice(2))`; a bad command line prints
 * "<script>: <what is wrong>" and a pointer to --help on stderr and exits 2; --help exits 0.
 */
export function cliArgs<T>(parse: (argv: readonly string[]) => T, argv: readonly string[] = process.argv.slice(2)): T {
  try {
    return parse(argv);
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.exitCode === 0) process.exit(0);
    const script = basename(process.argv[1] ?? 'bench', '.js');
    process.stderr.write(`${script}: ${e.message.replace(/^error: /, '').replace(/\n+/g, ' ')} (node dist/bench/${script}.js --help lists the arguments)\n`);
    process.exit(EXIT_USAGE);
  }
}

/** Whether the module at `url` (its import.meta.url) is the script node was started with (not imported by a test). */
export function isMain(url: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === url;
  } catch {
    return false;
  }
}
