// A driver opened on a device of another type — BlkDriver.open on sim:net, NetDriver.open on
// sim:blk: the error is E_NOT_VIRTIO, as it should be, but from BlkDriver and NetDriver it has no
// hint (RngDriver's and ConsoleDriver's have one: "open it with the driver for its type …") —
// README "Errors": every error is a UvirtioError with a stable code and a hint. What should
// happen: the same hint as the other drivers give.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { openTransport } from '../../lib/open.js';
import { UvirtioError } from '../../lib/errors.js';

const cases: [string, string, (x: never) => Promise<unknown>][] = [
  ['BlkDriver.open', 'sim:net', (x) => BlkDriver.open(x)],
  ['BlkDriver.open', 'sim:rng', (x) => BlkDriver.open(x)],
  ['NetDriver.open', 'sim:blk', (x) => NetDriver.open(x)],
  ['NetDriver.open', 'sim:console', (x) => NetDriver.open(x)],
];

for (const [name, address, open] of cases) {
  t.test(`${name} on ${address}: E_NOT_VIRTIO with a hint`, async (t) => {
    const opened = await openTransport(address);
    t.teardown(() => opened.transport.close());
    const e = await open(opened.transport as never).then(() => null, (err: unknown) => err);
    t.ok(e instanceof UvirtioError && e.code === 'E_NOT_VIRTIO', 'E_NOT_VIRTIO');
    t.ok(e instanceof UvirtioError && typeof e.hint === 'string' && e.hint.length > 0, `with a hint (got ${String((e as UvirtioError | null)?.hint)})`);
  });
}
