// `uvirtio info DEV`: what the device offers — type, features by name, queues, configuration —
// and the stop/state mechanisms a driver gets on it. Those come from VirtioDevice.mechanisms()
// after a real feature negotiation, not from a second reading of the feature bits (which once
// forgot vhost-user's `backend`).

import type { Command } from 'commander';
import { openTransport } from '../../lib/open.js';
import type { VirtioTransport } from '../../lib/transport/types.js';
import { BlkConfig, ConsoleConfig, ConsoleFeature, DeviceType, Feature, NetConfig, deviceTypeName, featureNames, hasFeature } from '../../lib/spec/index.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { DeviceConfig } from '../../lib/virtio/config.js';
import type { Mechanism } from '../../lib/virtio/snapshot/index.js';
import { action } from '../exit.js';
import { timeoutOf } from '../options.js';
import { BOUNDS, bounded, boundedAcquire } from '../wait.js';

/** Negotiates features (reset … FEATURES_OK), asks the device, and closes it again (a reset). */
async function mechanismsOf(t: VirtioTransport, timeoutMs: number): Promise<Mechanism[]> {
  const device = await boundedAcquire(VirtioDevice.open(t), { what: `feature negotiation with ${t.address}`, ms: timeoutMs }, (late) => late.close());
  try {
    return device.mechanisms();
  } finally {
    await bounded(device.close(), { what: `closing ${t.address} (device reset)`, ms: BOUNDS.CLOSE_MS }, null).catch(() => undefined);
  }
}

/** virtio 1.2 §5.3.4: each field that its offered feature makes valid; emerg_wr is the driver's to write. */
function consoleConfig(cfg: DeviceConfig, offered: bigint): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (hasFeature(offered, ConsoleFeature.SIZE)) {
    out.cols = cfg.read16(ConsoleConfig.COLS);
    out.rows = cfg.read16(ConsoleConfig.ROWS);
  }
  if (hasFeature(offered, ConsoleFeature.MULTIPORT)) out.max_nr_ports = cfg.read32(ConsoleConfig.MAX_NR_PORTS);
  if (hasFeature(offered, ConsoleFeature.EMERG_WRITE)) out.emerg_wr = 'write-only (EMERG_WRITE offered)';
  return out;
}

async function info(address: string, o: { json?: boolean }, timeoutMs: number): Promise<void> {
  // The open's own waits end within --timeout with the device's error; this bound is the backstop,
  // and an open it abandons is closed when it completes.
  const dev = await boundedAcquire(openTransport(address, { timeoutMs }), { what: `opening ${address}`, ms: timeoutMs + BOUNDS.MARGIN_MS }, (late) => late.transport.close());
  try {
    const t = dev.transport;
    const offered = t.deviceFeatures();
    const queues = Array.from({ length: t.numQueues }, (_, q) => ({ index: q, maxSize: t.queueMaxSize(q) }));
    const config: Record<string, unknown> = {};
    const cfg = new DeviceConfig(() => t);
    if (t.deviceType === DeviceType.BLK) config.capacitySectors = Number(cfg.read64(BlkConfig.CAPACITY));
    if (t.deviceType === DeviceType.NET) config.mac = [...cfg.readBytes(NetConfig.MAC, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    if (t.deviceType === DeviceType.CONSOLE) Object.assign(config, consoleConfig(cfg, offered));
    const mechanisms = await mechanismsOf(t, timeoutMs);
    const result = {
      address: dev.address, type: deviceTypeName(t.deviceType), deviceType: t.deviceType,
      offered: `0x${offered.toString(16)}`, offeredNames: featureNames(offered, t.deviceType),
      deviceState: hasFeature(offered, Feature.DEVICE_STATE), queues, config, mechanisms,
    };
    if (o.json) {
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

export function registerInfo(program: Command): void {
  program.command('info')
    .description('device type, offered features by name, queues, config, and which stop/state mechanisms it supports')
    .argument('<device>', 'device address (sim:blk, vfio:BDF, vhost-user:SOCKET, …)')
    .option('--json', 'one JSON object on stdout')
    .action(action((device: string, o: { json?: boolean }, cmd: Command) => info(device, o, timeoutOf(cmd))));
}
