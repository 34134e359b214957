// Opening a device by address (lib/address.ts) as a VirtioTransport.
//
// sim: options (all optional), e.g. sim:blk?layout=packed&mode=hold&queues=4:
//   layout=split|packed      split: the device does not offer RING_PACKED; packed: the driver should use it
//   state=ring-state|suspend|all|none   stop/state support offered (default all: RING_STATE,
//                            DEVICE_STATE and SUSPEND)
//   mode=drain|hold          what STOP does with requests in flight (default drain)
//   latency=MS               completion latency, so requests are in flight at a stop (default 0)
//   queues=N capacity=SECTORS queuesize=N indirect=0|1 eventidx=0|1 mac=52:54:00:12:34:56
//   blk: ro=1 discard=1 writezeroes=1 blksize=BYTES segmax=N sizemax=BYTES
//   net: mergeable=1 pairs=N (control queue + MQ with N pairs)      rng: seed=N
//   fault=KIND[,KIND…]       misbehaviour from the start (SIM_ADDRESS_FAULTS below)
// vfio:BDF (or a bare BDF): the function bound to vfio-pci, through lib/vfio. With shareWith, the
//   new function joins the other one's DMA address space (same container, same allocator), so a
//   migration target reaches the source's rings at the same IOVAs.
// vhost-user:/path/to.sock[?type=blk|net&timeout=MS&drain=MS&arena=MiB&queuesize=N]: a front-end
//   over the back-end's UNIX socket (lib/transport/vhost-user/open.ts); with shareWith, the new
//   connection shares the source's memfd arena.

import { parseAddress, formatAddress, type DeviceAddress } from './address.js';
import { HeapDmaAllocator } from './mem/dma.js';
import { createSimDevice, type AnySimDevice, type FaultKind, type SimOptions } from './sim/index.js';
import { VirtioPciTransport } from './transport/pci/transport.js';
import type { VirtioTransport } from './transport/types.js';
import type { VfioPciFunction as VfioFunction } from './vfio/pci-function.js';
import { openVhostUser } from './transport/vhost-user/open.js';
import { UsageError } from './errors.js';
import type { Layout } from './virtio/queue/types.js';

export interface OpenedDevice {
  address: string;
  transport: VirtioTransport;
  /** The reference device behind a sim: address (for tests and rehearsals). */
  sim?: AnySimDevice;
  /** A layout the address asks for (sim:…?layout=…), else undefined. */
  layout?: Layout;
}

export interface OpenTransportOptions {
  /**
   * Memory to share with an already open device (a migration target must reach the source's
   * rings). For sim: the heap allocator of the source device.
   */
  shareWith?: OpenedDevice;
}

const SIM_OPTIONS = new Set([
  'layout', 'state', 'mode', 'latency', 'queues', 'capacity', 'queuesize', 'indirect', 'eventidx', 'mac', 'completion',
  'ro', 'discard', 'writezeroes', 'blksize', 'segmax', 'sizemax', 'mergeable', 'pairs', 'seed', 'fault',
]);

/**
 * fault=KIND[,KIND…]: misbehaviour the reference device shows from the start (lib/sim/faults.ts),
 * to rehearse failure handling from a script — e.g. a --to target whose FEATURES_OK never sticks.
 */
const SIM_ADDRESS_FAULTS: readonly FaultKind[] = [
  'features-refuse', 'device-state-refuse', 'config-churn', 'completion-silence', 'interrupt-silence', 'stop-stuck', 'state-lie',
];

function bad(address: string, message: string): UsageError {
  return new UsageError('E_BAD_ADDRESS', `${address}: ${message}`, 'see `uvirtio --help` for the sim: options');
}

function intOption(address: string, o: Record<string, string>, key: string, min: number, max: number): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw bad(address, `${key}=${v} must be an integer from ${min} to ${max}`);
  return n;
}

function flagOption(address: string, o: Record<string, string>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (v !== '0' && v !== '1') throw bad(address, `${key}=${v} must be 0 or 1`);
  return v === '1';
}

function openSim(a: Extract<DeviceAddress, { kind: 'sim' }>, shareWith?: OpenedDevice): OpenedDevice {
  const address = formatAddress(a);
  const o = a.options;
  for (const k of Object.keys(o)) if (!SIM_OPTIONS.has(k)) throw bad(address, `unknown option "${k}" (known: ${[...SIM_OPTIONS].join(', ')})`);
  const layout = o.layout;
  if (layout !== undefined && layout !== 'split' && layout !== 'packed') throw bad(address, `layout=${layout} must be split or packed`);
  const state = o.state ?? 'all';
  if (!['ring-state', 'suspend', 'all', 'none'].includes(state)) throw bad(address, `state=${state} must be ring-state, suspend, all or none`);
  const mode = o.mode ?? 'drain';
  if (mode !== 'drain' && mode !== 'hold') throw bad(address, `mode=${mode} must be drain or hold`);
  const latency = intOption(address, o, 'latency', 0, 10_000) ?? 0;
  const completion = o.completion === 'manual' ? 'manual' as const : latency > 0 ? { latencyMs: latency } : 'immediate' as const;
  if (o.completion !== undefined && o.completion !== 'manual' && o.completion !== 'immediate') throw bad(address, 'completion must be immediate or manual');
  const queueSize = intOption(address, o, 'queuesize', 2, 32768);
  if (queueSize !== undefined && (queueSize & (queueSize - 1)) !== 0) throw bad(address, `queuesize=${queueSize} must be a power of two`);
  let dma: HeapDmaAllocator | undefined;
  let sharedDisk: Uint8Array | undefined;
  if (shareWith) {
    if (!shareWith.sim) throw bad(address, `a reference device can only take over from another reference device, not ${shareWith.address}`);
    dma = shareWith.sim.dma;
    // A migration target reaches the same storage, as a second daemon on the same image would.
    if (shareWith.sim.type === 'blk') sharedDisk = shareWith.sim.disk;
  }
  const common = {
    ...(queueSize !== undefined ? { queueMaxSize: queueSize } : {}),
    offer: { packed: layout !== 'split', indirect: flagOption(address, o, 'indirect') ?? true, eventIdx: flagOption(address, o, 'eventidx') ?? true },
    completion,
    state: { ringState: state === 'ring-state' || state === 'all', suspend: state === 'suspend' || state === 'all' },
    mode,
    ...(dma ? { dma } : {}),
  } as const;
  const int = (key: string, min: number, max: number): number | undefined => intOption(address, o, key, min, max);
  const options: SimOptions = a.type === 'blk'
    ? {
      type: 'blk', ...common, ...(o.queues ? { queues: intOption(address, o, 'queues', 1, 64)! } : {}), ...(o.capacity ? { capacitySectors: intOption(address, o, 'capacity', 1, 1 << 22)! } : {}),
      ...(sharedDisk ? { sharedDisk } : {}),
      readOnly: flagOption(address, o, 'ro') ?? false,
      ...(flagOption(address, o, 'discard') ? { discard: {} } : {}),
      ...(flagOption(address, o, 'writezeroes') ? { writeZeroes: {} } : {}),
      ...given('blkSize', int('blksize', 512, 65536)), ...given('segMax', int('segmax', 1, 32768)), ...given('sizeMax', int('sizemax', 512, 1 << 30)),
    }
    : a.type === 'net'
      ? { type: 'net', ...common, ...(o.mac ? { mac: o.mac } : {}), mergeable: flagOption(address, o, 'mergeable') ?? false, ...given('queuePairs', int('pairs', 1, 64)) }
      : { type: 'rng', ...common, ...given('seed', int('seed', 1, 0xffffffff)) };
  const faults = (o.fault ?? '').split(',').filter(Boolean);
  for (const f of faults) {
    if (!SIM_ADDRESS_FAULTS.includes(f as FaultKind)) throw bad(address, `fault=${f} must be one of ${SIM_ADDRESS_FAULTS.join(', ')}`);
  }
  let sim: AnySimDevice;
  try {
    sim = createSimDevice(options);
  } catch (e) {
    // The reference device's own checks (blk_size a power of two, …): the address is what was wrong.
    if (e instanceof UsageError) throw bad(address, e.message);
    throw e;
  }
  for (const f of faults) sim.injectFault({ kind: f as FaultKind });
  return { address, transport: new VirtioPciTransport(sim.fn), sim, ...(layout ? { layout } : {}) };
}

/** `{ [key]: value }`, or nothing when the option was not given. */
function given(key: string, value: number | undefined): Record<string, number> {
  return value === undefined ? {} : { [key]: value };
}

async function openVfio(bdf: string, shareWith?: OpenedDevice): Promise<OpenedDevice> {
  const address = `vfio:${bdf}`;
  // Loaded on first use, so that sim: users never load libc through koffi.
  const { VfioPciFunction } = await import('./vfio/pci-function.js');
  let peer: VfioFunction | undefined;
  if (shareWith) {
    const fn = shareWith.transport instanceof VirtioPciTransport ? shareWith.transport.fn : undefined;
    if (!(fn instanceof VfioPciFunction)) {
      throw new UsageError('E_BAD_ADDRESS', `${address}: a VFIO function can only share DMA memory with another VFIO function, not ${shareWith.address}`,
        'migrate between two vfio: devices (or between two sim: devices)');
    }
    peer = fn;
  }
  const fn = VfioPciFunction.open(bdf, peer ? { shareWith: peer } : {});
  try {
    return { address, transport: new VirtioPciTransport(fn) };
  } catch (e) {
    fn.close();
    throw e;
  }
}

/** Opens the device at `address`. Throws E_BAD_ADDRESS for malformed addresses and options. */
export async function openTransport(address: string, options: OpenTransportOptions = {}): Promise<OpenedDevice> {
  const a = parseAddress(address);
  switch (a.kind) {
    case 'sim':
      return openSim(a, options.shareWith);
    case 'vfio':
      return openVfio(a.bdf, options.shareWith);
    case 'vhost-user':
      return openVhostUser(a.path, options.shareWith);
  }
}
