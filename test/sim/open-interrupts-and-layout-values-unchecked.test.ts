// VirtioDevice.open (and every driver's open, which passes them on) checks its numeric options
// (requestTimeoutMs -1 is refused E_INVALID_ARGUMENT) but takes any value for `interrupts` and for
// the feature policy: interrupts 'bogus' (or 'MSIX', a typo) opens a device as if 'auto' was
// asked; features: 5 (not an object) and features.layout 'bogus' open as 'auto' — README: "an
// argument of the wrong kind to a public call … refused E_INVALID_ARGUMENT naming the value by
// kind". A caller who asked for 'msix' with a typo silently gets polling on a device without
// MSI-X. What should happen: each is refused E_INVALID_ARGUMENT before the transport is touched,
// and the transport can be opened again with good options.

import t from 'tap';
import { RngDriver } from '../../drivers/rng/index.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { codeOfAsync } from '../support/codes.js';

const bad: [string, Record<string, unknown>][] = [
  ['interrupts: \'bogus\'', { interrupts: 'bogus' }],
  ['interrupts: \'MSIX\'', { interrupts: 'MSIX' }],
  ['features: 5', { features: 5 }],
  ['features: { layout: \'bogus\' }', { features: { layout: 'bogus' } }],
];

for (const [name, options] of bad) {
  for (const [what, open] of [
    ['VirtioDevice.open', (tr: never) => VirtioDevice.open(tr, options as never)],
    ['RngDriver.open', (tr: never) => RngDriver.open(tr, options as never)],
    ['BlkDriver.open', (tr: never) => BlkDriver.open(tr, options as never)],
  ] as const) {
    t.test(`${what}(t, { ${name} }): refused E_INVALID_ARGUMENT`, async (t) => {
      const opened = await openTransport(what === 'BlkDriver.open' ? 'sim:blk' : 'sim:rng');
      let made: { close(): Promise<unknown> } | undefined;
      const code = await codeOfAsync(async () => { made = await open(opened.transport as never); });
      t.teardown(() => made?.close());
      t.equal(code, 'E_INVALID_ARGUMENT', `refused (got ${code})`);
    });
  }
}

// The drivers' own ring options likewise: BlkDriver.open { layout: 'bogus' } and { indirect: 'yes' },
// NetDriver.open { layout: 'bogus' } and { mergeable: 'x' } open as if unset.

for (const [what, address, open] of [
  ['BlkDriver.open(t, { layout: \'bogus\' })', 'sim:blk', (tr: never) => BlkDriver.open(tr, { layout: 'bogus' } as never)],
  ['BlkDriver.open(t, { indirect: \'yes\' })', 'sim:blk', (tr: never) => BlkDriver.open(tr, { indirect: 'yes' } as never)],
  ['NetDriver.open(t, { layout: \'bogus\' })', 'sim:net', (tr: never) => NetDriver.open(tr, { layout: 'bogus' } as never)],
  ['NetDriver.open(t, { mergeable: \'x\' })', 'sim:net', (tr: never) => NetDriver.open(tr, { mergeable: 'x' } as never)],
] as const) {
  t.test(`${what}: refused E_INVALID_ARGUMENT`, async (t) => {
    const opened = await openTransport(address);
    let made: { close(): Promise<unknown> } | undefined;
    const code = await codeOfAsync(async () => { made = await open(opened.transport as never); });
    t.teardown(() => made?.close());
    t.equal(code, 'E_INVALID_ARGUMENT', `refused (got ${code})`);
  });
}
