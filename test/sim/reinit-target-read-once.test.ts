// reinit() checks options.target (a transport, E_INVALID_ARGUMENT otherwise: "never a TypeError")
// and then reads it again to run: a getter (or a Proxy) answering the destination transport to the
// check and the address string 'sim:blk' afterwards makes reinit() reject with a bare TypeError
// ("target.deviceFeatures is not a function"). The same kind as stop()'s timeoutMs read again
// (stop-timeout-read-once.test.ts). What should happen: each option is read once; the reinit goes
// on with what was checked (here onto the destination), or is refused E_INVALID_ARGUMENT.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { UvirtioError } from '../../lib/errors.js';

t.test('reinit({ target }) with a target getter answering a transport, then a string', async (t) => {
  const src = await openTransport('sim:blk');
  const dst = await openTransport('sim:blk', { shareWith: src });
  const blk = await BlkDriver.open(src.transport);
  t.teardown(async () => {
    await blk.close();
    dst.transport.close();
  });
  await blk.write(0, new Uint8Array(512).fill(7));
  await blk.stop();
  const snapshot = blk.snapshot();
  let reads = 0;
  const options = {
    get target(): typeof dst.transport {
      reads++;
      return (reads === 1 ? dst.transport : 'sim:blk') as typeof dst.transport;
    },
  };
  let thrown: unknown;
  await blk.reinit(snapshot, options).catch((e: unknown) => (thrown = e));
  t.ok(thrown === undefined || thrown instanceof UvirtioError, `a UvirtioError or nothing, got ${String(thrown)}`);
  t.equal(reads, 1, 'target was read once');
});
