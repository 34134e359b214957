// A driver opened on a device of another type — BlkDriver.open on sim:net, NetDriver.open on
// sim:blk: the error is E_NOT_VIRTIO, as it should be, but from BlkDriver and NetDriver it has no
// hint (RngDriver's and ConsoleDriver's have one: "open it with the driver for its type …") —
// README "Errors": every error is a UvirtioError with a stable code and a hint. The same for
// BlkDriver's refusals of the caller's requests: write() on a read-only device (E_READ_ONLY), and
// discard() / writeZeroes() on a device that does not offer them (E_UNSUPPORTED) — no hint.
// What should happen: a hint on each (the driver for the type; a device without RO / a device
// that offers DISCARD or WRITE_ZEROES, or write the zeroes with write()).

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

t.test('BlkDriver refusals on a read-only device without DISCARD / WRITE_ZEROES: each with a hint', async (t) => {
  const opened = await openTransport('sim:blk?ro=1');
  const blk = await BlkDriver.open(opened.transport);
  t.teardown(() => blk.close());
  const calls: [string, string, () => Promise<unknown>][] = [
    ['write on a read-only device', 'E_READ_ONLY', () => blk.write(0, new Uint8Array(512))],
    ['discard not offered', 'E_UNSUPPORTED', () => blk.discard([{ sector: 0, sectors: 8 }])],
    ['writeZeroes not offered', 'E_UNSUPPORTED', () => blk.writeZeroes([{ sector: 0, sectors: 8 }])],
  ];
  for (const [what, code, call] of calls) {
    const e = await call().then(() => null, (err: unknown) => err);
    t.ok(e instanceof UvirtioError && e.code === code, `${what}: ${code}`);
    t.ok(e instanceof UvirtioError && typeof e.hint === 'string' && e.hint.length > 0, `${what}: with a hint (got ${String((e as UvirtioError | null)?.hint)})`);
  }
});
