// The transports uvirtio opens, one entry each: the syntax of an address's target and the
// transport's opener, loaded on first open (a sim: user never loads koffi nor libc: lib/sys loads
// them on the first system call).
// Adding a transport is its folder (with an open.ts exporting `open`, see Opener) and its line in
// SCHEMES. lib/address.ts parses addresses with it; lib/open.ts opens them with it.

import type { PciFunction } from './pci/function.js';
import { normaliseBdf } from './pci/bdf.js';
import { SIM_MODELS, isSimDeviceType, type AnySimDevice } from './sim/models/index.js';
import type { Layout } from './spec/ring.js';
import type { VirtioTransport } from './transport/types.js';

/** An open device: what openTransport gives back, and what a migration target shares memory with. */
export interface OpenedTransport {
  /** The address, normalised (formatAddress). */
  address: string;
  /** The transport a driver opens on (BlkDriver.open(opened.transport), VirtioDevice.open). */
  transport: VirtioTransport;
  /** The PCI function under a virtio-pci transport (sim:, vfio:); undefined for vhost-user and vhost-vdpa. */
  fn?: PciFunction;
  /** The reference device behind a sim: address (for tests and rehearsals). */
  sim?: AnySimDevice;
  /** A layout the address asks for (sim:…?layout=…), else undefined. */
  layout?: Layout;
}

/** What an opener is given: the normalised address, its target and its options as text. */
export interface OpenRequest {
  /** The whole address, normalised (formatAddress). */
  address: string;
  /** The scheme's target in its normal form (a BDF, a socket path, a device type). */
  target: string;
  /** The options after `?`, as text; the opener checks them (lib/util/options.ts). */
  options: Readonly<Record<string, string>>;
  /** The caller's bound on the open, in ms (openTransport's timeoutMs): an opener that waits (vhost-user's handshake) ends within it. */
  timeoutMs?: number;
}

/** What an opener gives back: a transport, or a PCI function to put virtio-pci on (lib/open.ts does). */
export type Opened =
  | { address: string; transport: VirtioTransport }
  | { address: string; fn: PciFunction; sim?: AnySimDevice; layout?: Layout };

/** A transport's opener module: checks its own options and its own shareWith, then opens. */
export interface Opener {
  /** Opens `request`; throws E_BAD_ADDRESS for options it does not take, and its transport's own errors. */
  open(request: OpenRequest, shareWith?: OpenedTransport): Opened | Promise<Opened>;
}

/** One transport: its target's check (the normal form, or why not) and its opener, loaded on first use. */
export interface SchemeEntry {
  /** The target's normal form, or why the text is not one. */
  target(text: string): { target: string } | { why: string };
  /** Example addresses for hints ("vfio:0000:00:02.0 (or a bare BDF)"). */
  examples(): string;
  /** Loads the opener module (a dynamic import). */
  load(): Promise<Opener>;
}

function pciTarget(t: string): { target: string } | { why: string } {
  const bdf = normaliseBdf(t);
  return bdf ? { target: bdf } : { why: `"${t}" is not a PCI address (domain:bus:device.function)` };
}
function socketTarget(t: string): { target: string } | { why: string } {
  return t.startsWith('/') || t.startsWith('.') ? { target: t } : { why: 'the socket path must be absolute or start with ./' };
}
function vdpaTarget(t: string): { target: string } | { why: string } {
  return t.startsWith('/') ? { target: t } : { why: 'the vhost-vdpa character device path must be absolute (/dev/vhost-vdpa-N)' };
}
function simTarget(t: string): { target: string } | { why: string } {
  return isSimDeviceType(t) ? { target: t } : { why: `the reference device models ${Object.keys(SIM_MODELS).join(', ')}, not "${t}"` };
}

/** The registry: one line per transport. */
export const SCHEMES = {
  vfio: { target: pciTarget, examples: () => 'vfio:0000:00:02.0 (or a bare BDF)', load: () => import('./vfio/open.js') },
  'vhost-user': { target: socketTarget, examples: () => 'vhost-user:/path/to.sock', load: () => import('./transport/vhost-user/open.js') },
  'vhost-vdpa': { target: vdpaTarget, examples: () => 'vhost-vdpa:/dev/vhost-vdpa-0', load: () => import('./transport/vhost-vdpa/open.js') },
  sim: { target: simTarget, examples: () => Object.keys(SIM_MODELS).map((n) => `sim:${n}`).join(', '), load: () => import('./sim/open.js') },
} satisfies Record<string, SchemeEntry>;

/** A transport's name before the colon: 'vfio' | 'vhost-user' | 'vhost-vdpa' | 'sim'. */
export type Scheme = keyof typeof SCHEMES;
