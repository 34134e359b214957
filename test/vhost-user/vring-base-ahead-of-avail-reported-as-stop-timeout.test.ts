// Breaker 30: a back-end whose GET_VRING_BASE answer (split ring: its next available index) is
// beyond what the driver ever made available — here 200 while avail->idx is 0, nothing in flight —
// reports state the rings rule out. The front-end does not check it against avail->idx: it waits
// the whole drain bound for used->idx to reach 200, then fails the stop with E_STOP_TIMEOUT "200
// fetched request(s) did not complete" and the hint "the back-end is stuck on I/O … retry later or
// with a longer drain timeout" — advice that can never help. README "Failure semantics": state a
// stopped device reports that its rings rule out is E_DEVICE_BAD_STATE (VirtioDevice.vqState:
// "State a device reports (ring-state registers, a back-end) is checked against the driver's own
// rings first"); a vhost-user answer that cannot be true is at least E_VHOST_PROTOCOL. Either way,
// at once, not after the drain bound.
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import { isUvirtioError } from '../../lib/errors.js';
import { FakeBackend, reply } from './fake-backend.js';

const DRAIN_MS = 3000;

t.test('GET_VRING_BASE beyond avail->idx (200 with none made available): an impossible-state error at once, not E_STOP_TIMEOUT after the drain', async (t) => {
  const base = Buffer.from([0, 0, 0, 0, 200, 0, 0, 0]);
  const f = await FakeBackend.start({ script: (m) => (m.request === Req.GET_VRING_BASE ? { kind: 'raw', bytes: reply(Req.GET_VRING_BASE, base) } : undefined) });
  t.teardown(() => f.close());
  const dev = await openTransport(`${f.address}?timeout=2000&drain=${DRAIN_MS}`);
  const blk = await BlkDriver.open(dev.transport);
  t.teardown(() => blk.close());

  const t0 = Date.now();
  const e = await blk.stop({ mechanism: 'backend' }).then(() => null, (x: unknown) => x);
  const ms = Date.now() - t0;
  t.comment(`stop ended after ${ms} ms: ${isUvirtioError(e) ? `${e.code}: ${e.message} (hint: ${e.hint})` : String(e)}`);
  t.ok(isUvirtioError(e), 'the stop is refused with a UvirtioError');
  t.ok(isUvirtioError(e) && ['E_DEVICE_BAD_STATE', 'E_VHOST_PROTOCOL'].includes(e.code), `an impossible-state code (E_DEVICE_BAD_STATE or E_VHOST_PROTOCOL), got ${isUvirtioError(e) ? e.code : String(e)}`);
  t.notMatch(isUvirtioError(e) ? e.hint ?? '' : '', /longer drain timeout/, 'no advice to wait longer for requests that were never made available');
  t.ok(ms < DRAIN_MS, `refused before the drain bound (${ms} ms < ${DRAIN_MS} ms): nothing was in flight to wait for`);
});
