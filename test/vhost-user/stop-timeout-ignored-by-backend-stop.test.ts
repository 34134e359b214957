// Breaker 30: VirtioDevice.stop({ timeoutMs }) is documented as the "bound on the wait for STOP /
// SUSPEND to show, or for in-flight requests to drain". The vhost-user 'backend' mechanism ignores
// it: BackendFacility.stop(ctx) never receives the stop's timeoutMs, and each ring waits its own
// bounds instead — the settle before GET_VRING_BASE (up to SETTLE_MS, 2 s, or drain=), the reply
// timeout for GET_VRING_BASE, then the drain after it (drain=, default 5000 ms). A back-end stuck on
// I/O (it fetched the requests and never completes them, as qemu-storage-daemon does with a hung
// disk) makes stop({ timeoutMs: 500 }) take ~7 s. Expected: the stop ends, with its typed error,
// within its timeoutMs (+ 2 s of slack).
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import { isUvirtioError } from '../../lib/errors.js';
import { codeOfAsync } from '../support/codes.js';
import { FakeBackend, reply } from './fake-backend.js';

const STOP_TIMEOUT_MS = 500;
const SLACK_MS = 2000;
const REQUESTS = 4;

t.test(`stop({ timeoutMs: ${STOP_TIMEOUT_MS} }) on a vhost-user back-end stuck on fetched requests ends within its timeoutMs`, async (t) => {
  // GET_VRING_BASE: every request made available was fetched (avail index REQUESTS); none completes.
  const base = Buffer.from([0, 0, 0, 0, REQUESTS, 0, 0, 0]);
  const f = await FakeBackend.start({ script: (m) => (m.request === Req.GET_VRING_BASE ? { kind: 'raw', bytes: reply(Req.GET_VRING_BASE, base) } : undefined) });
  t.teardown(() => f.close());
  // The address's own bounds at their defaults (timeout 5000, drain 5000): the caller bounds this stop.
  const dev = await openTransport(f.address);
  const blk = await BlkDriver.open(dev.transport, { depth: 8 });
  t.teardown(() => blk.close());
  const requests = Array.from({ length: REQUESTS }, (_, i) => codeOfAsync(blk.read(i * 8, 1)));
  await new Promise((r) => setTimeout(r, 20));

  const t0 = Date.now();
  const e = await blk.stop({ mechanism: 'backend', timeoutMs: STOP_TIMEOUT_MS }).then(() => null, (x: unknown) => x);
  const ms = Date.now() - t0;
  t.comment(`stop ended after ${ms} ms: ${isUvirtioError(e) ? `${e.code}: ${e.message}` : String(e)}`);
  t.ok(isUvirtioError(e), 'the stop fails with a UvirtioError (the back-end kept its requests)');
  t.ok(ms <= STOP_TIMEOUT_MS + SLACK_MS, `the stop ended within timeoutMs ${STOP_TIMEOUT_MS} + ${SLACK_MS} ms (took ${ms} ms)`);
  t.same(await Promise.all(requests), requests.map(() => isUvirtioError(e) ? e.code : 'no error'), 'every request settled with the stop\'s error');
});
