// Opening a device by address (lib/address.ts) as a VirtioTransport. Each transport has its own
// opener, in its own folder, loaded on first use — so a sim: user never loads the VFIO code, nor
// koffi — and registered here with one line:
//   sim:NAME?…          lib/sim/open.ts                  the reference device (its options are there)
//   vfio:BDF, a BDF     lib/vfio/open.ts                 a function bound to vfio-pci
//   vhost-user:PATH?…   lib/transport/vhost-user/open.ts a front-end over a back-end's socket
// An opener checks its own options (lib/util/options.ts) and its own shareWith, and gives back
// either a transport or a PCI function; a PCI function gets the virtio-pci transport here.

import { parseAddress, formatAddress, type Scheme } from './address.js';
import type { PciFunction } from './pci/function.js';
import type { AnySimDevice } from './sim/models/index.js';
import type { Layout } from './spec/ring.js';
import { VirtioPciTransport } from './transport/pci/transport.js';
import type { VirtioTransport } from './transport/types.js';

/** An open device: what openTransport gives back, and what a migration target shares memory with. */
export interface OpenedTransport {
  /** The address, normalised (formatAddress). */
  address: string;
  /** The transport a driver opens on (BlkDriver.open(opened.transport), VirtioDevice.open). */
  transport: VirtioTransport;
  /** The PCI function under a virtio-pci transport (sim:, vfio:); undefined for vhost-user. */
  fn?: PciFunction;
  /** The reference device behind a sim: address (for tests and rehearsals). */
  sim?: AnySimDevice;
  /** A layout the address asks for (sim:…?layout=…), else undefined. */
  layout?: Layout;
}

/** @deprecated The former name of OpenedTransport. */
export type OpenedDevice = OpenedTransport;

/** openTransport's options. */
export interface OpenTransportOptions {
  /**
   * An open device to share memory with (a migration target must reach the source's rings at the
   * same addresses): the same scheme's device only — sim's heap, VFIO's container, vhost-user's
   * memfd arena. Another is refused with E_BAD_ADDRESS.
   */
  shareWith?: OpenedTransport;
}

/** What an opener is given: the normalised address, its target and its options as text. */
interface OpenRequest {
  address: string;
  target: string;
  options: Readonly<Record<string, string>>;
}

/** What an opener gives back: a transport, or a PCI function to put virtio-pci on. */
type Opened =
  | { address: string; transport: VirtioTransport }
  | { address: string; fn: PciFunction; sim?: AnySimDevice; layout?: Layout };

/** A transport's opener module. */
interface Opener {
  open(request: OpenRequest, shareWith?: OpenedTransport): Opened | Promise<Opened>;
}

/** The openers, one line per transport, each loaded on first use. */
const OPENERS: Record<Scheme, () => Promise<Opener>> = {
  sim: () => import('./sim/open.js'),
  vfio: () => import('./vfio/open.js'),
  'vhost-user': () => import('./transport/vhost-user/open.js'),
};

/**
 * Opens the device at `address`. Throws E_BAD_ADDRESS (UsageError) for a malformed address, an
 * option its transport does not take or a value that does not fit, and a `shareWith` of another
 * kind; the transport's own errors otherwise (E_NOT_VIRTIO, E_NO_DEVICE, E_PERMISSION, …).
 */
export async function openTransport(address: string, options: OpenTransportOptions = {}): Promise<OpenedTransport> {
  const a = parseAddress(address);
  const opener = await OPENERS[a.scheme]();
  const opened = await opener.open({ address: formatAddress(a), target: a.target, options: a.options }, options.shareWith);
  if ('transport' in opened) return opened;
  try {
    return { ...opened, transport: new VirtioPciTransport(opened.fn) };
  } catch (e) {
    opened.fn.close();
    throw e;
  }
}
