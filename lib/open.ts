// Opening a device by address (lib/address.ts) as a VirtioTransport. Each transport has its own
// opener, in its own folder, loaded on first open through its line in lib/schemes.ts (a sim:
// user never loads koffi nor libc: lib/sys loads them on the first system call):
//   sim:NAME?…          lib/sim/open.ts                  the reference device (its options are there)
//   vfio:BDF, a BDF     lib/vfio/open.ts                 a function bound to vfio-pci
//   vhost-user:PATH?…   lib/transport/vhost-user/open.ts a front-end over a back-end's socket
// An opener checks its own options (lib/util/options.ts) and its own shareWith, and gives back
// either a transport or a PCI function; a PCI function gets the virtio-pci transport here.

import { parseAddress, formatAddress } from './address.js';
import { SCHEMES, type OpenedTransport } from './schemes.js';
import { VirtioPciTransport } from './transport/pci/transport.js';
import { checkValue, int, optionsObject, type OptionKeys } from './util/options.js';

export type { OpenedTransport };

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
  /**
   * Bound on the open's waits for the device, in ms (an integer from 1 to 600000): vhost-user's
   * connect and handshake end within it (E_VHOST_TIMEOUT naming it) when it is smaller than the
   * address's own ?timeout=. Default: the address's bounds.
   */
  timeoutMs?: number;
}

/** OpenTransportOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const OPEN_TRANSPORT_OPTION_KEYS: OptionKeys<OpenTransportOptions> = { shareWith: true, timeoutMs: true };

/**
 * Opens the device at `address`. Throws E_BAD_ADDRESS (UsageError) for a malformed address, an
 * option its transport does not take or a value that does not fit, and a `shareWith` of another
 * kind; E_INVALID_ARGUMENT for options that are not an object or have a key OpenTransportOptions
 * does not (a misspelt `timeoutMS`), and a timeoutMs that is not an integer from 1 to 600000; the transport's own errors otherwise (E_NOT_VIRTIO, E_NO_DEVICE, E_PERMISSION, …).
 */
export async function openTransport(address: string, options: OpenTransportOptions = {}): Promise<OpenedTransport> {
  options = optionsObject(options, 'openTransport options', OPEN_TRANSPORT_OPTION_KEYS);
  const timeoutMs = options.timeoutMs === undefined ? undefined
    : checkValue(int(1, 600_000), options.timeoutMs, 'openTransport timeoutMs (ms)', 'leave it out for the address\'s own bounds');
  const a = parseAddress(address);
  const opener = await SCHEMES[a.scheme].load();
  const opened = await opener.open({ address: formatAddress(a), target: a.target, options: a.options, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }, options.shareWith);
  if ('transport' in opened) return opened;
  try {
    return { ...opened, transport: new VirtioPciTransport(opened.fn) };
  } catch (e) {
    opened.fn.close();
    throw e;
  }
}
