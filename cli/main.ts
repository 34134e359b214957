// The `uvirtio` command line (commander). Every command a script parses takes --json.
//
// Exit status (also in --help and the README):
//   0  success (rehearse: every request completed exactly once with the right data)
//   1  rehearse finished but the verdict failed (lost, duplicated or corrupted requests)
//   2  bad usage or input: a malformed address, option or snapshot file
//   3  the device or the platform failed (feature missing, timeout, device fault, VFIO error)
//   130 interrupted (Ctrl-C); the device was left stopped or reset, never half-set

import { Command, InvalidArgumentError, Option } from 'commander';
import { openTransport } from '../lib/open.js';
import { Feature, deviceTypeName, featureNames, hasFeature, BlkConfig, DeviceType, NetConfig } from '../lib/virtio/constants.js';
import { isUvirtioError, type UvirtioError } from '../lib/virtio/errors.js';
import { rehearse, type RehearsalReport } from './rehearsal/engine.js';
import { registerSessionCommands } from './session/commands.js';
import { bindVfio, listVirtioDevices, parseBdf, unbindVfio } from '../lib/vfio/sysfs.js';
import { hostUses } from '../lib/vfio/in-use.js';
import { DeviceError } from '../lib/virtio/errors.js';

const EXIT = { OK: 0, VERDICT: 1, USAGE: 2, DEVICE: 3, INTERRUPTED: 130 } as const;
const USAGE_CODES = new Set(['E_INVALID_ARGUMENT', 'E_BAD_ADDRESS', 'E_NO_DEVICE', 'E_NOT_VIRTIO', 'E_DRIVER_BOUND', 'E_NOT_BOUND', 'E_DEVICE_IN_USE', 'E_NO_SESSION', 'E_SESSION_EXISTS', 'E_SESSION_AMBIGUOUS', 'E_STATE_NOT_STOPPED']);

const EXIT_HELP = `
Exit status:
  0    success (rehearse: every request completed exactly once, data intact)
  1    rehearse verdict failed (lost, duplicated or corrupted requests)
  2    bad usage or input (malformed address, option, or snapshot file)
  3    device or platform error (missing feature, timeout, device fault, VFIO)
  130  interrupted (the device is left stopped or reset, never half-set)

Devices: sim:blk, sim:net, sim:rng (the built-in reference device; options e.g.
  sim:blk?layout=packed&mode=hold&latency=1&state=ring-state&queues=4&ro=1&discard=1&blksize=4096,
  sim:net?pairs=4&mergeable=1), vfio:0000:00:02.0 or a bare BDF,
  vhost-user:/path/to.sock`;

let debug = false;

function exitCodeFor(e: unknown): number {
  if (!isUvirtioError(e)) return EXIT.DEVICE;
  return USAGE_CODES.has(e.code) || e.code.startsWith('E_SNAPSHOT_') ? EXIT.USAGE : EXIT.DEVICE;
}

/** One line, code and hint; the stack only with --debug. With --json the error is an object on stdout. */
function report(e: unknown, json: boolean): never {
  const err = e as UvirtioError;
  if (json) console.log(JSON.stringify({ ok: false, error: isUvirtioError(e) ? err.toJSON() : { code: 'E_INTERNAL', message: String(e) } }));
  else console.error(`uvirtio: ${isUvirtioError(e) ? err.toLine() : String((e as Error)?.message ?? e)}`);
  if (debug && e instanceof Error) console.error(e.stack);
  process.exit(exitCodeFor(e));
}

function positiveInt(what: string, max = 1_000_000) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`${what} must be an integer from 1 to ${max}`);
    return n;
  };
}

async function info(address: string, opts: { json?: boolean }): Promise<void> {
  const dev = await openTransport(address);
  try {
    const t = dev.transport;
    const offered = t.deviceFeatures();
    const queues = Array.from({ length: t.numQueues }, (_, q) => ({ index: q, maxSize: t.queueMaxSize(q) }));
    const config: Record<string, unknown> = {};
    if (t.deviceType === DeviceType.BLK) config.capacitySectors = Number(t.readConfig64(BlkConfig.CAPACITY));
    if (t.deviceType === DeviceType.NET) config.mac = [...t.readConfigBytes(NetConfig.MAC, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    const mechanisms = [
      ...(hasFeature(offered, Feature.RING_STATE) && t.ringState ? ['ring-state'] : []),
      ...(hasFeature(offered, Feature.SUSPEND) ? ['suspend'] : []),
      'quiesce',
    ];
    const result = {
      address: dev.address, type: deviceTypeName(t.deviceType), deviceType: t.deviceType,
      offered: `0x${offered.toString(16)}`, offeredNames: featureNames(offered, t.deviceType),
      deviceState: hasFeature(offered, Feature.DEVICE_STATE), queues, config, mechanisms,
    };
    if (opts.json) {
      console.log(JSON.stringify(result));
      return;
    }
    console.log(`${result.address}: virtio-${result.type}`);
    console.log(`  offered features: ${result.offeredNames}`);
    console.log(`  queues: ${queues.map((q) => `${q.index}(max ${q.maxSize})`).join(' ')}`);
    for (const [k, v] of Object.entries(config)) console.log(`  ${k}: ${String(v)}`);
    console.log(`  stop/state mechanisms: ${mechanisms.join(', ')}${result.deviceState ? ' (+ device state mailbox)' : ''}`);
  } finally {
    dev.transport.close();
  }
}

interface RehearseCli {
  device: string; to?: string; workload?: 'blk' | 'net'; cycles: number; inflight: number;
  mechanism: 'auto' | 'ring-state' | 'suspend' | 'backend' | 'quiesce'; layout: 'auto' | 'split' | 'packed';
  seed: number; json?: boolean; snapshotDir?: string;
}

async function rehearseCommand(o: RehearseCli): Promise<void> {
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const r: RehearsalReport = await rehearse({
    device: o.device, ...(o.to ? { to: o.to } : {}), ...(o.workload ? { workload: o.workload } : {}),
    cycles: o.cycles, inflight: o.inflight, mechanism: o.mechanism, layout: o.layout, seed: o.seed,
    ...(o.snapshotDir ? { snapshotDir: o.snapshotDir } : {}),
    signal: abort.signal,
    onCycle: o.json ? undefined : (c) => console.log(
      `cycle ${c.cycle}: stopped ${c.from} with ${c.inFlightAtStop} in flight (${c.mechanism}), snapshot ${c.snapshotFile}, reinit on ${c.to}, pause ${c.pauseMs.toFixed(2)} ms`),
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (o.json) console.log(JSON.stringify(r));
  else {
    const q = r.requests;
    console.log(`${r.ok ? 'OK' : 'FAILED'}: ${r.workload} on ${r.device}${r.target !== r.device ? ` ⇄ ${r.target}` : ''}, ${r.mechanism ?? 'no'} mechanism, ${r.layout} rings, ${r.cycles} cycles`);
    console.log(`  requests: ${q.submitted} submitted, ${q.completed} completed, ${q.lost} lost, ${q.duplicated} duplicated, ${q.corrupted} corrupted`);
    console.log(`  pause: median ${r.pause_ms.median} ms, p99 ${r.pause_ms.p99} ms, max ${r.pause_ms.max} ms`);
  }
  process.exitCode = abort.signal.aborted ? EXIT.INTERRUPTED : r.ok ? EXIT.OK : EXIT.VERDICT;
}

const program = new Command('uvirtio')
  .description('User-space virtio drivers: inspect devices, and rehearse stop / save state / reinit migrations.')
  .option('--debug', 'print stack traces with errors')
  .addHelpText('after', EXIT_HELP)
  .hook('preAction', (cmd) => { debug = Boolean(cmd.opts().debug); })
  // Set before the subcommands are added, which inherit it: usage errors exit 2, --help exits 0.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT.USAGE));

registerSessionCommands(program, (human, data, json) => console.log(json ? JSON.stringify(data) : human), report);

program.command('list')
  .description('virtio PCI devices: address, type, driver, IOMMU group, and whether VFIO can use them (and why not)')
  .option('--json', 'a JSON array on stdout')
  .action((o: { json?: boolean }) => {
    try {
      const all = listVirtioDevices();
      if (o.json) {
        console.log(JSON.stringify(all));
        return;
      }
      if (all.length === 0) console.log('no virtio PCI devices (the reference device is always there: sim:blk, sim:net)');
      for (const d of all) {
        console.log(`vfio:${d.bdf}  virtio-${d.typeName}  driver ${d.driver ?? '(none)'}  group ${d.iommuGroup ?? '-'}  ${d.vfioUsable ? 'usable' : `not usable: ${d.reason ?? ''}`}`);
      }
    } catch (e) {
      report(e, Boolean(o.json));
    }
  });

program.command('bind')
  .description('bind a virtio PCI device to vfio-pci (driver_override + drivers_probe), remembering its driver')
  .argument('<bdf>', 'PCI address, e.g. 0000:00:03.0')
  .option('--force', 'bind even if the host uses the device (a mounted disk, an interface that is up)')
  .option('--json', 'one JSON object on stdout')
  .action((bdf: string, o: { json?: boolean; force?: boolean }) => {
    try {
      const inUse = hostUses(parseBdf(bdf));
      if (inUse.length > 0 && !o.force) {
        throw new DeviceError('E_DEVICE_IN_USE', `${parseBdf(bdf)} is in use by this host: ${inUse.join('; ')}`,
          'taking it would take that disk or network away from the machine; unmount / bring it down first, or pass --force');
      }
      const r = bindVfio(bdf);
      console.log(o.json ? JSON.stringify(r) : `${r.bdf} bound to vfio-pci${r.previous ? ` (was ${r.previous})` : ''}`);
    } catch (e) {
      report(e, Boolean(o.json));
    }
  });

program.command('unbind')
  .description('release a device from vfio-pci and give it back to its previous driver')
  .argument('<bdf>', 'PCI address')
  .option('--json', 'one JSON object on stdout')
  .action((bdf: string, o: { json?: boolean }) => {
    try {
      const r = unbindVfio(bdf);
      console.log(o.json ? JSON.stringify(r) : `${r.bdf} released${r.driver ? `, now bound to ${r.driver}` : ''}`);
    } catch (e) {
      report(e, Boolean(o.json));
    }
  });

program.command('info')
  .description('device type, offered features by name, queues, config, and which stop/state mechanisms it supports')
  .argument('<device>', 'device address (sim:blk, vfio:BDF, …)')
  .option('--json', 'one JSON object on stdout')
  .action(async (device: string, o: { json?: boolean }) => info(device, o).catch((e) => report(e, Boolean(o.json))));

program.command('rehearse')
  .description('run traffic, stop at seeded random points with requests in flight, snapshot to a file, reinit (same device or --to), verify every request completed exactly once')
  .option('--device <dev>', 'the device to rehearse on', 'sim:blk')
  .option('--to <dev>', 'a second device of the same type: each cycle migrates to the other one')
  .addOption(new Option('--workload <kind>', 'traffic (default: from the device type)').choices(['blk', 'net']))
  .option('--cycles <n>', 'stop/reinit cycles', positiveInt('cycles', 100_000), 5)
  .option('--inflight <n>', 'requests kept in flight', positiveInt('inflight', 4096), 16)
  .addOption(new Option('--mechanism <m>', 'how to stop and read state').choices(['auto', 'ring-state', 'suspend', 'backend', 'quiesce']).default('auto'))
  .addOption(new Option('--layout <l>', 'virtqueue layout').choices(['auto', 'split', 'packed']).default('auto'))
  .option('--seed <s>', 'seed for traffic and stop points', (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('seed must be a non-negative integer');
    return n;
  }, 1)
  .option('--snapshot-dir <dir>', 'keep the snapshot files here')
  .option('--json', 'one JSON object on stdout')
  .addHelpText('after', EXIT_HELP)
  .action(async (o: RehearseCli) => rehearseCommand(o).catch((e) => report(e, Boolean(o.json))));

await program.parseAsync(process.argv);
