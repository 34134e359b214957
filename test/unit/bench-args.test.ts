// The benchmark scripts' command lines (bench/cli.ts, commander): each script's exported parseArgs
// on good and bad argv — nothing is measured and no VM is started (importing a script does not run
// it: bench/cli.ts isMain). Every invocation written in package.json, bench/README.md and
// docs/test-vm.md still parses; the defaults are the documented ones; a value out of range names its
// flag and what it accepts; an unknown flag or word is refused; a bad command line exits 2.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CommanderError } from 'commander';
import { parseArgs as drivers } from '../../bench/drivers.js';
import { parseArgs as pause } from '../../bench/pause.js';
import { parseArgs as ringDriver } from '../../bench/ring-driver.js';
import { parseArgs as rings } from '../../bench/rings.js';
import { parseArgs as vhostUserBlk } from '../../bench/vhost-user-blk.js';
import { parseArgs as vmBlk } from '../../bench/vm-blk.js';
import { parseArgs as vmNet } from '../../bench/vm-net.js';
import { parseArgs as vmNetProfile } from '../../bench/vm-net-profile.js';
import { parseArgs as vmProfile } from '../../bench/vm-profile.js';
import { parseArgs as vmVdpa } from '../../bench/vm-vdpa.js';

type Parse = (argv: readonly string[]) => unknown;

/** The CommanderError `parse` throws for `argv` (undefined when it parses). */
function refusal(parse: Parse, argv: string[]): CommanderError | undefined {
  try {
    parse(argv);
    return undefined;
  } catch (e) {
    if (e instanceof CommanderError) return e;
    throw e;
  }
}

t.test('defaults are the documented ones (bench/README.md, the scripts\' headers)', async (t) => {
  t.same(vmBlk([]), { seconds: 2, json: false, only: [], hybridUs: 4000, warmupMs: 3000, spinUs: undefined, queues: 1, pollBudget: undefined });
  t.same(vmNet([]), { seconds: 3, json: false, only: [], eventIdx: true, processes: 1 });
  t.same(vmVdpa([]), { seconds: 3, cycles: 200, json: false });
  t.same(vhostUserBlk([]), { seconds: 2, cycles: 20, rounds: 3, json: false });
  t.same(rings([]), { seconds: 1.5, only: undefined, json: false, peer: true });
  t.same(ringDriver([]), { seconds: 0.5, repeat: 3, only: [], json: false, c: true });
  t.same(drivers([]), { seconds: 1.5, json: false });
  t.same(pause([]), { cycles: 200, json: false });
  t.same(vmNetProfile([]), { from: 'split', size: 64, mode: 'poll', seconds: 3, eventIdx: true });
  t.same(vmProfile([]), {
    layout: 'packed', depth: 1, mode: 'poll', seconds: 3, eventIdx: true, indirect: true, profile: true, count: false, threads: false, into: false,
    bdf: '0000:02:00.0', queues: undefined, budget: undefined, spinUs: undefined, warmupMs: 3000,
  });
});

t.test('every documented invocation parses, to what it says', async (t) => {
  t.same(vmBlk(['3', '--json']), { seconds: 3, json: true, only: [], hybridUs: 4000, warmupMs: 3000, spinUs: undefined, queues: 1, pollBudget: undefined });
  t.same(vmBlk(['3', '--only', 'uvirtio', '--only', 'c', '--poll-budget', '0']).only, ['uvirtio', 'c']);
  t.same(vmBlk(['--hybrid-us', '200', '--spin-us', '0', '--warmup-ms', '1000', '--queues', '2', '--poll-budget', 'half', '3']),
    { seconds: 3, json: false, only: [], hybridUs: 200, warmupMs: 1000, spinUs: 0, queues: 2, pollBudget: 'half' });
  t.equal(vmBlk(['--poll-budget', '8']).pollBudget, 8);
  t.same(vmNet(['3', '--json', '--only', 'dpdk', '--no-event-idx']), { seconds: 3, json: true, only: ['dpdk'], eventIdx: false, processes: 1 });
  t.same(vmNet(['2', '--processes', '2']), { seconds: 2, json: false, only: [], eventIdx: true, processes: 2 });
  t.same(vmVdpa(['2', '100', '--json']), { seconds: 2, cycles: 100, json: true });
  t.same(vhostUserBlk(['3', '--json']), { seconds: 3, cycles: 20, rounds: 3, json: true });
  t.same(rings(['5']), { seconds: 5, only: undefined, json: false, peer: true });
  t.same(rings(['--only', 'split/32/poll', '--json', '--no-peer']), { seconds: 1.5, only: 'split/32/poll', json: true, peer: false });
  t.same(ringDriver(['--seconds', '2', '--repeat', '5', '--json']), { seconds: 2, repeat: 5, only: [], json: true, c: true });
  t.same(ringDriver(['--no-c', '--only', 'split,32']), { seconds: 0.5, repeat: 3, only: ['split', '32'], json: false, c: false });
  t.same(ringDriver(['--only', 'floor']).only, ['floor']);
  t.same(pause(['50', '--json']), { cycles: 50, json: true });
  t.same(drivers(['0.25']), { seconds: 0.25, json: false });
  t.same(vmNetProfile(['packed', '1500', 'msix', '2', '--no-event-idx']), { from: 'packed', size: 1500, mode: 'msix', seconds: 2, eventIdx: false });
  t.same(vmNetProfile(['split', '64', 'poll']), { from: 'split', size: 64, mode: 'poll', seconds: 3, eventIdx: true });
});

t.test('vm-profile keeps its words: positions, bare words, key=value', async (t) => {
  t.match(vmProfile(['split', '1', 'poll']), { layout: 'split', depth: 1, mode: 'poll', seconds: 3, bdf: '0000:01:00.0', profile: true });
  t.match(vmProfile(['packed', '32', 'msix', '3', 'noprofile']), { layout: 'packed', depth: 32, mode: 'msix', seconds: 3, profile: false });
  t.match(vmProfile(['split', '1', 'msix', '3', 'count']), { count: true, profile: true });
  t.same(vmProfile(['packed', '1', 'hybrid', '2', 'noevent', 'noindirect', 'threads', 'into', 'spin=0', 'warmup=500', 'bdf=01:00.0', 'queues=1', 'budget=half']), {
    layout: 'packed', depth: 1, mode: 'hybrid', seconds: 2, eventIdx: false, indirect: false, profile: true, count: false, threads: true, into: true,
    bdf: '0000:01:00.0', queues: 1, budget: 'half', spinUs: 0, warmupMs: 500,
  });
  // The words may come before SECONDS too (before, `split 1 poll noprofile` took "noprofile" for SECONDS).
  t.match(vmProfile(['split', '1', 'poll', 'noprofile', 'budget=0']), { seconds: 3, profile: false, budget: 0 });
});

t.test('a value out of range or not a number: exit 2, naming the flag and what it accepts', async (t) => {
  const cases: [string, Parse, string[], RegExp][] = [
    ['vm-blk --hybrid-us', vmBlk, ['--hybrid-us', 'abc'], /'--hybrid-us <µs>' argument 'abc' is invalid\. --hybrid-us must be an integer from 0 to 1000000 \(µs\)/],
    ['vm-blk --spin-us', vmBlk, ['--spin-us', '20000'], /--spin-us must be an integer from 0 to 10000 \(µs\)/],
    ['vm-blk --warmup-ms', vmBlk, ['--warmup-ms', '1e3'], /--warmup-ms must be an integer from 0 to 600000 \(ms\)/],
    ['vm-blk --queues', vmBlk, ['--queues', '0'], /--queues must be an integer from 1 to 65535/],
    ['vm-blk --poll-budget', vmBlk, ['--poll-budget', 'full'], /--poll-budget must be 'half' or an integer from 0 to 65536/],
    ['vm-blk seconds', vmBlk, ['0'], /argument 'seconds'\. seconds must be a number of seconds above 0 and at most 3600/],
    ['vm-blk --only', vmBlk, ['--only', 'dpdk'], /--only must be one of uvirtio, c, linux/],
    ['vm-net --only', vmNet, ['--only', 'c'], /--only must be one of uvirtio, dpdk/],
    ['vm-net seconds', vmNet, ['-1'], /seconds must be a number of seconds above 0/],
    ['vm-net --processes', vmNet, ['--processes', '3'], /--processes must be an integer from 1 to 2/],
    ['ring-driver --seconds', ringDriver, ['--seconds', 'x'], /--seconds must be a number of seconds above 0 and at most 3600/],
    ['ring-driver --repeat', ringDriver, ['--repeat', '0'], /--repeat must be an integer from 1 to 1000/],
    ['ring-driver --only', ringDriver, ['--only', 'splt'], /--only: "splt" is in no case's name/],
    ['ring-driver --only (no case has both)', ringDriver, ['--only', 'packed,floor'], /--only packed,floor: no case has every word/],
    ['rings --only', rings, ['--only', 'split/2/poll'], /--only <layout\/batch\/delivery>' argument 'split\/2\/poll' is invalid\. Allowed choices are split\/1\/msix/],
    ['pause cycles', pause, ['1.5'], /cycles must be an integer from 1 to 1000000/],
    ['vhost-user-blk rounds', vhostUserBlk, ['2', '20', '0'], /rounds must be an integer from 1 to 1000000/],
    ['vm-vdpa cycles', vmVdpa, ['2', 'x'], /cycles must be an integer from 1 to 1000000/],
    ['vm-net-profile size', vmNetProfile, ['split', '9000'], /size must be an integer from 14 to 1514 \(bytes\)/],
    ['vm-net-profile from', vmNetProfile, ['spilt'], /argument 'from'\. Allowed choices are split, packed/],
    ['vm-profile spin=', vmProfile, ['split', '1', 'poll', 'spin=abc'], /spin=abc: spin= must be an integer from 0 to 10000 \(µs\)/],
    ['vm-profile budget=', vmProfile, ['split', '1', 'poll', 'budget=full'], /budget= must be 'half' or an integer from 0 to 65536/],
    ['vm-profile bdf=', vmProfile, ['split', '1', 'poll', 'bdf=zz'], /bdf= must be a PCI address/],
    ['vm-profile DEPTH', vmProfile, ['split', '0', 'poll'], /DEPTH \(2nd word\) must be an integer from 1 to 4096, got "0"/],
    ['vm-profile SECONDS', vmProfile, ['split', '1', 'poll', '0'], /SECONDS \(4th word\) must be a number of seconds above 0/],
    ['vm-profile layout', vmProfile, ['1', 'poll'], /the layout \(1st word\) must be split or packed, got "1"/],
  ];
  for (const [name, parse, argv, message] of cases) {
    const e = refusal(parse, argv);
    t.ok(e && e.exitCode === 2 && message.test(e.message), `${name}: ${e?.message ?? 'parsed'}`);
  }
});

t.test('unknown flags and words are refused (exit 2), not ignored', async (t) => {
  const cases: [string, Parse, string[], RegExp][] = [
    ['vm-blk typo', vmBlk, ['3', '--json', '--hybrdi-us', '5'], /unknown option '--hybrdi-us'/],
    ['vm-net', vmNet, ['3', '--no-event-idx', '--bogus'], /unknown option '--bogus'/],
    ['drivers', drivers, ['--jsn'], /unknown option '--jsn'/],
    ['drivers, a word too many', drivers, ['1', '2'], /too many arguments/],
    ['vm-vdpa, a word too many', vmVdpa, ['2', '100', '5'], /too many arguments/],
    ['ring-driver --floor', ringDriver, ['--floor'], /unknown option '--floor'/],
    ['vm-net-profile', vmNetProfile, ['split', '64', 'poll', '3', 'extra'], /too many arguments/],
    ['vm-profile unknown bare word', vmProfile, ['split', '1', 'poll', '3', 'noprofle'], /unknown word "noprofle"/],
    ['vm-profile unknown word for SECONDS', vmProfile, ['split', '1', 'poll', 'noprofle'], /unknown word "noprofle"/],
    ['vm-profile unknown key', vmProfile, ['split', '1', 'poll', 'depth=3'], /unknown word "depth=3" \(words: count, noevent, noindirect, noprofile, into, threads; key=value: bdf, queues, budget, spin, warmup\)/],
    ['vm-profile unknown mode', vmProfile, ['split', '1', 'pol'], /unknown word "pol" \(the mode \(3rd word\) must be poll, msix or hybrid/],
    ['vm-profile flag', vmProfile, ['split', '1', 'poll', '--noprofile'], /unknown option '--noprofile'/],
  ];
  for (const [name, parse, argv, message] of cases) {
    const e = refusal(parse, argv);
    t.ok(e && e.exitCode === 2 && message.test(e.message), `${name}: ${e?.message ?? 'parsed'}`);
  }
});

t.test('--help names each argument with its unit and default, and ends with status 0', async (t) => {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array): boolean => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  let e: CommanderError | undefined;
  try {
    e = refusal(vmBlk, ['--help']);
  } finally {
    process.stdout.write = write;
  }
  t.equal(e?.exitCode, 0, 'help is not an error');
  for (const text of [/seconds per configuration .*\(default: 2\)/s, /--hybrid-us <µs>.*µs \(default: 4000\)/s, /--warmup-ms <ms>.*ms \(default: 3000\)/s,
    /--queues <n>.*\(default:\s+1\)/s, /--poll-budget <half\|n>/, /--only <driver>.*uvirtio, c, linux/s, /--json/]) {
    t.match(out, text);
  }
});

t.test('the scripts themselves: a bad command line prints one line and exits 2, --help exits 0 (no VM needed)', async (t) => {
  const run = (script: string, args: string[]): { status: number | null; stdout: string; stderr: string } =>
    spawnSync(process.execPath, [fileURLToPath(new URL(`../../bench/${script}.js`, import.meta.url)), ...args], { encoding: 'utf8', timeout: 60_000 });
  const bad = run('vm-blk', ['3', '--spin-us', '-1']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /^vm-blk: option '--spin-us <µs>' argument '-1' is invalid\. --spin-us must be an integer from 0 to 10000 \(µs\) \(node dist\/bench\/vm-blk\.js --help lists the arguments\)\n$/);
  const unknown = run('drivers', ['--bogus']);
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /^drivers: unknown option '--bogus'/);
  const help = run('vm-profile', ['--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /Usage: vm-profile \[options\] \[words\.\.\.\][\s\S]*noprofile[\s\S]*budget=/);
});
