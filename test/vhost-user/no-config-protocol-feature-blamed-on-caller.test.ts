// Breaker 30: a vhost-user-blk back-end that does not offer VHOST_USER_PROTOCOL_F_CONFIG (here: no
// VHOST_USER_F_PROTOCOL_FEATURES at all, as an old or minimal back-end) gives the front-end no
// device configuration (GET_CONFIG is never asked). VhostUserTransport.readConfig documents
// E_CAP_MISSING for that ("no VHOST_USER_PROTOCOL_F_CONFIG"), a device-side fault. Today the
// capacity read at BlkDriver.open is refused first by the generic configuration bounds check as
// the CALLER's mistake: UsageError E_INVALID_ARGUMENT, hint "offsets and lengths are whole numbers
// of bytes…", and `uvirtio info` exits 2 ("bad usage or input — nothing was changed") where a
// device the SDK cannot drive is exit 3 (README "The command line").
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Feature, bit } from '../../lib/spec/index.js';
import { isUvirtioError } from '../../lib/errors.js';
import { Background } from '../support/cli.js';
import { FakeBackend } from './fake-backend.js';

/** VERSION_1 only: no VHOST_USER_F_PROTOCOL_FEATURES, so no CONFIG protocol feature. */
const FEATURES = bit(Feature.VERSION_1);

t.test('a blk back-end without the CONFIG protocol feature: BlkDriver.open fails with a device-side code, not the caller\'s E_INVALID_ARGUMENT', async (t) => {
  const f = await FakeBackend.start({ features: FEATURES });
  t.teardown(() => f.close());
  const { transport } = await openTransport(`${f.address}?timeout=2000`);
  t.teardown(() => transport.close());
  t.equal(transport.configLength, 0, 'no configuration came with the handshake');
  const e = await BlkDriver.open(transport).then(() => null, (x: unknown) => x);
  t.ok(isUvirtioError(e), `a UvirtioError (${String(e)})`);
  const code = isUvirtioError(e) ? e.code : null;
  t.not(code, 'E_INVALID_ARGUMENT', `not the caller's input code (${isUvirtioError(e) ? `${e.message}; hint: ${e.hint}` : ''})`);
  t.equal(code, 'E_CAP_MISSING', 'E_CAP_MISSING, as VhostUserTransport.readConfig documents for a back-end without VHOST_USER_PROTOCOL_F_CONFIG');
});

t.test('uvirtio info on that back-end: exit 3 (device error), not 2 (bad usage)', async (t) => {
  const f = await FakeBackend.start({ features: FEATURES });
  t.teardown(() => f.close());
  // In the background: the fake serves from this process's event loop.
  const r = await new Background({}, process.cwd(), ['info', `${f.address}?type=blk&timeout=2000`]).exited;
  t.comment(`exit ${r.status}; stderr ${r.stderr.trim()}`);
  t.notMatch(r.stderr, /E_INVALID_ARGUMENT/, 'not reported as an invalid argument');
  t.equal(r.status, 3, 'exit 3: the device could not be driven');
});
