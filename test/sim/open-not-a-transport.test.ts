// What a careless caller passes where a transport belongs: the address string itself
// (BlkDriver.open('sim:blk') instead of (await openTransport('sim:blk')).transport), null or
// undefined (an open that failed, a variable never set), a number, an empty object. Today
// VirtioDevice.open (your own driver, README "Using it as a library") throws a bare TypeError for
// every one of them ("Cannot read properties of null (reading 'deviceOnDriverThread')",
// "transport.readStatus is not a function"); BlkDriver/NetDriver/RngDriver/ConsoleDriver.open throw
// a TypeError for null and undefined and, for the rest, the DEVICE's error E_NOT_VIRTIO ("undefined
// is a virtio device of type undefined, not blk (2)") — the caller's mistake blamed on a device.
// README "Failure semantics": an argument of the wrong kind to a public call is refused
// E_INVALID_ARGUMENT naming the value by kind, never a TypeError. What should happen:
// E_INVALID_ARGUMENT, with a hint to pass openTransport(address).transport. The same for the
// constructors of the same example: new QueueSet(x) and new VirtioPciTransport(x) throw TypeErrors.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { UvirtioError } from '../../lib/errors.js';

const opens: [string, (x: never) => Promise<unknown>][] = [
  ['VirtioDevice.open', (x) => VirtioDevice.open(x)],
  ['BlkDriver.open', (x) => BlkDriver.open(x)],
  ['NetDriver.open', (x) => NetDriver.open(x)],
  ['RngDriver.open', (x) => RngDriver.open(x)],
  ['ConsoleDriver.open', (x) => ConsoleDriver.open(x)],
];
const notTransports: [string, unknown][] = [['the address string', 'sim:blk'], ['null', null], ['undefined', undefined], ['a number', 5], ['an empty object', {}]];

for (const [name, open] of opens) {
  t.test(`${name}(not a transport): E_INVALID_ARGUMENT with a hint`, async (t) => {
    for (const [what, value] of notTransports) {
      const e = await open(value as never).then(() => null, (err: unknown) => err);
      const shown = e instanceof UvirtioError ? `${e.code}: ${e.message}` : `foreign: ${String(e)}`;
      t.ok(e instanceof UvirtioError && e.code === 'E_INVALID_ARGUMENT' && Boolean(e.hint), `${what}: got ${shown}`);
    }
  });
}

const constructors: [string, (x: never) => unknown][] = [
  ['new QueueSet', (x) => new QueueSet(x)],
  ['new VirtioPciTransport', (x) => new VirtioPciTransport(x)],
];

for (const [name, make] of constructors) {
  t.test(`${name}(not a device / PCI function): E_INVALID_ARGUMENT`, async (t) => {
    for (const [what, value] of notTransports) {
      let e: unknown = null;
      try { make(value as never); } catch (err) { e = err; }
      const shown = e instanceof UvirtioError ? `${e.code}: ${e.message}` : `foreign: ${String(e)}`;
      t.ok(e instanceof UvirtioError && e.code === 'E_INVALID_ARGUMENT', `${what}: got ${shown}`);
    }
  });
}
