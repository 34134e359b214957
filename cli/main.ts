// The `uvirtio` command line (commander). Every command a script parses takes --json. Exit
// statuses: exit.ts (EXIT, EXIT_HELP — also in --help and the README). Signals: signals.ts. Every
// wait is bounded and named: wait.ts.

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerCheck } from './commands/check.js';
import { registerHostCommands } from './commands/host.js';
import { registerInfo } from './commands/info.js';
import { registerRehearse } from './commands/rehearse.js';
import { EXIT_HELP, fail, handleParseErrors, setDebug } from './exit.js';
import { intArg } from './options.js';
import { registerSessionCommands } from './session/commands.js';
import { installSignalHandlers } from './signals.js';
import { BOUNDS } from './wait.js';

installSignalHandlers(); // bin/uvirtio.js installs them earlier still; this covers other entry points

/** This package's version, from its package.json (dist/cli/main.js → ../../package.json). */
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('uvirtio')
  .version(version, '-V, --version', 'print the uvirtio version and exit')
  .description('User-space virtio drivers: inspect devices, and rehearse stop / save state / reinit migrations.')
  .option('--debug', 'print stack traces with errors')
  .option('--timeout <ms>', `bound on each wait for the device: a stop, a reinit, traffic making no progress, a drain, a verification (a session agent's answer gets ${BOUNDS.MARGIN_MS} ms more)`,
    intArg('timeout', 1, 600_000), BOUNDS.DEVICE_MS)
  .addHelpText('after', `${EXIT_HELP}

Devices: sim:blk, sim:net, sim:rng (the built-in reference device; options e.g.
  sim:blk?layout=packed&mode=hold&latency=1&state=ring-state&queues=4&ro=1&discard=1&blksize=4096,
  sim:net?pairs=4&mergeable=1), vfio:0000:00:02.0 or a bare BDF,
  vhost-user:/path/to.sock[?type=blk|net&timeout=MS]`)
  .hook('preAction', (_program, cmd) => setDebug(Boolean(cmd.optsWithGlobals().debug)));
// Before the subcommands are added, which inherit it: parse errors are one line and exit 2.
handleParseErrors(program);

registerHostCommands(program);
registerInfo(program);
registerRehearse(program);
registerSessionCommands(program);
registerCheck(program);
for (const command of program.commands) command.addHelpText('after', EXIT_HELP);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e, process.argv.includes('--json'));
}
