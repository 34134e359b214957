// How a `uvirtio` command ends: its exit status, and an error as one line on stderr
// (`uvirtio: E_CODE: message (hint: …)`) or, with --json, as an object on stdout.

import { CommanderError, type Command } from 'commander';
import { UsageError, isUvirtioError, type ErrorCode } from '../lib/errors.js';
import { InterruptedError, SIGNAL_STATUS, interruption, onInterrupt, signalStatus, throwIfInterrupted } from './signals.js';
import { thrownMessage } from '../lib/util/shown.js';

export const EXIT = { OK: 0, VERDICT: 1, USAGE: 2, DEVICE: 3, SIGINT: SIGNAL_STATUS.SIGINT, SIGTERM: SIGNAL_STATUS.SIGTERM } as const;

export const EXIT_HELP = `
Exit status:
  0    success (rehearse, detach --verify: every request completed exactly once, data intact)
  1    the verdict failed (lost, duplicated or corrupted requests)
  2    bad usage or input (command, option, address, session name, snapshot file,
       session runtime directory);
       nothing was changed
  3    the device or the platform failed (missing feature, timeout, device fault, VFIO)
  130  interrupted by SIGINT (Ctrl-C)
  143  interrupted by SIGTERM
       Either ends the command within 2 s (a second signal: at once); the device is left
       reset or stopped, never half-set, and a snapshot file complete or absent.`;

/** Codes that mean the input was wrong, not the device: exit 2. So are all E_SNAPSHOT_* codes. */
const USAGE_CODES = new Set<ErrorCode>([
  'E_INVALID_ARGUMENT', 'E_BAD_ADDRESS', 'E_BAD_STATE', 'E_NO_DEVICE', 'E_NOT_VIRTIO', 'E_DRIVER_BOUND', 'E_NOT_BOUND',
  'E_DEVICE_IN_USE', 'E_NO_SESSION', 'E_SESSION_EXISTS', 'E_SESSION_AMBIGUOUS', 'E_STATE_NOT_STOPPED', 'E_VHOST_NOT_SOCKET',
]);

export function exitCodeFor(e: unknown): number {
  if (e instanceof InterruptedError) return e.status;
  if (!isUvirtioError(e)) return EXIT.DEVICE;
  return exitCodeForCode(e.code);
}

/** The exit status for an error code: usage and input 2, a signal 130/143, the device or platform 3. */
export function exitCodeForCode(code: string): number {
  if (code === 'E_INTERRUPTED') return signalStatus() ?? EXIT.SIGINT;
  return USAGE_CODES.has(code as ErrorCode) || code.startsWith('E_SNAPSHOT_') ? EXIT.USAGE : EXIT.DEVICE;
}

let debug = false;
export function setDebug(on: boolean): void {
  debug = on;
}

/**
 * How long the end of a command waits for its output still queued for stdout or stderr before it
 * exits anyway (ms): Node writes to a pipe asynchronously, and what the pipe (64 KiB) could not take
 * yet — a `--json` verdict read by a reader that is behind — would be lost at exit.
 */
export const OUTPUT_DRAIN_MS = 30_000;

let exiting = false;

/**
 * Ends the process with `code` — or with 130/143 if a signal came meanwhile (the output may then
 * be incomplete). Output still queued for stdout or stderr is written first, for at most
 * OUTPUT_DRAIN_MS (a reader that went away, or a SIGINT/SIGTERM, ends the wait at once); until then this returns, the
 * process ending from a later turn of the loop, so a caller does nothing after it. A second
 * call while the first waits does nothing.
 */
export function finish(code: number): void {
  if (exiting) return;
  exiting = true;
  const queued = [process.stdout, process.stderr].filter((s) => s.writableLength > 0 && !s.destroyed);
  if (queued.length === 0) process.exit(signalStatus() ?? code);
  process.exitCode = code;
  const exit = (): never => process.exit(signalStatus() ?? code);
  // Not unref()'d: the bound must hold whatever else is on the loop.
  const bound = setTimeout(exit, OUTPUT_DRAIN_MS);
  onInterrupt(exit); // SIGINT/SIGTERM while the output waits: the command is over, exit 130/143 at once
  let left = queued.length;
  for (const stream of queued) {
    stream.on('error', () => undefined); // EPIPE: the reader went away; its write callback ends the wait
    stream.write('', () => {
      if (--left > 0) return;
      clearTimeout(bound);
      exit();
    });
  }
}

/** A hint for an error that came without one (every line the CLI prints has a hint). */
function defaultHint(code: ErrorCode): string {
  if (code.startsWith('E_SNAPSHOT_')) return 'restore a file written by `uvirtio snapshot` from this session\'s driver, unchanged';
  switch (code) {
    case 'E_BAD_STATE': return '`uvirtio status` shows what the device is doing now';
    case 'E_REQUEST_TIMEOUT': case 'E_DEVICE_UNRESPONSIVE': return 'check the device (or back-end), or raise --timeout';
    default: return 'run again with --debug for the details';
  }
}

/** Control characters (a hostile file's bytes quoted in a message) escaped: the error stays one harmless line. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => (c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * Reports the error (one line, code and hint; the stack only with --debug) and exits with its
 * status (through finish(): it may return while queued output is written; do nothing after it).
 * Once a signal came, the error reported is the interruption (naming the other error).
 */
export function fail(e: unknown, json: boolean): void {
  if (exiting) return;
  const signal = interruption().reason as InterruptedError | undefined;
  if (signal && !(e instanceof InterruptedError)) e = new InterruptedError(signal.signal, e);
  if (isUvirtioError(e)) {
    const error = { ...e.toJSON(), hint: e.hint ?? defaultHint(e.code) };
    if (json) console.log(JSON.stringify({ ok: false, error }));
    else console.error(`uvirtio: ${error.code}: ${oneLine(error.message)} (hint: ${oneLine(error.hint)})`);
  } else {
    const message = oneLine(thrownMessage(e));
    const hint = 'this is a bug in uvirtio; run again with --debug and report the stack trace';
    if (json) console.log(JSON.stringify({ ok: false, error: { message, hint } }));
    else console.error(`uvirtio: ${message} (hint: ${hint})`);
  }
  if (debug && e instanceof Error) console.error(e.stack);
  finish(exitCodeFor(e));
}

/** A commander parse error (unknown command or option, bad value, missing argument) as a UsageError. */
export function usageErrorFrom(err: CommanderError, program: Command): UsageError {
  const [first, ...rest] = err.message.replace(/^error: /, '').split('\n');
  const suggestion = rest.join(' ').replace(/^\((.*)\)$/, '$1').trim();
  const name = process.argv.slice(2).find((a) => program.commands.some((c) => c.name() === a));
  const help = err.code === 'commander.unknownCommand' || !name ? '`uvirtio --help` lists the commands' : `\`uvirtio ${name} --help\` shows its arguments and options`;
  return new UsageError('E_INVALID_ARGUMENT', first!.trim(), suggestion ? `${suggestion.replace(/^D/, 'd').replace(/\?$/, '')}? ${help}` : help);
}

/** Commander errors become our one-line errors and exit 2; --help exits 0. */
export function handleParseErrors(program: Command): void {
  program.configureOutput({ outputError: () => undefined }).exitOverride((err: CommanderError) => {
    if (err.exitCode === 0) process.exit(0);
    if (err.code === 'commander.help') process.exit(EXIT.USAGE); // `uvirtio` alone: the help went to stderr
    fail(usageErrorFrom(err, program), process.argv.includes('--json'));
  });
}

/**
 * Wraps a command's action: it does not start once a signal came; its result (a status, or
 * nothing for 0) or its error ends the process. Commander passes (...arguments, options, command).
 */
export function action<A extends unknown[]>(body: (...args: A) => Promise<number | void> | number | void): (...args: A) => Promise<void> {
  return async (...args: A): Promise<void> => {
    const options = args[args.length - 2] as { json?: boolean } | undefined;
    try {
      throwIfInterrupted();
      finish((await body(...args)) ?? EXIT.OK);
    } catch (e) {
      // A full turn of the event loop first (two check phases have a poll phase between them): a
      // signal that came while the process was blocked in a synchronous call is handled now, and
      // the interruption is what gets reported.
      await new Promise((r) => setImmediate(() => setImmediate(r)));
      fail(e, Boolean(options?.json));
    }
  };
}
