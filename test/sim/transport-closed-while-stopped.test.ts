// The transport is closed under a stopped driver (owner's mistake or a dying back-end). Then
// snapshot() must not blame the device (ring-state reads zeros: E_DEVICE_BAD_STATE "impossible
// state") and resume() must not report success on a dead transport: both should say E_CLOSED,
// as open/reinit now do for a closed transport. Found by a breaker (fixed: E_DEVICE_BAD_STATE, and
// resume() resolved).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { settledCode } from '../support/codes.js';

const codeOf = (p: Promise<unknown>): Promise<string> => settledCode(p);

t.test('ring-state stop, transport closed, snapshot(): E_CLOSED, not E_DEVICE_BAD_STATE', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 3000 });
  t.teardown(() => blk.close());
  await blk.read(0, 1);
  await blk.stop({ mechanism: 'ring-state' });
  opened.transport.close();
  const code = await codeOf(Promise.resolve().then(() => blk.snapshot()));
  t.equal(code, 'E_CLOSED', `snapshot() threw ${code}`);
});

for (const mechanism of ['quiesce', 'suspend'] as const) {
  t.test(`${mechanism} stop, transport closed, resume(): rejected E_CLOSED rather than resolving`, async (t) => {
    const opened = await openTransport('sim:blk?latency=5');
    const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 3000 });
    t.teardown(() => blk.close());
    await blk.stop({ mechanism });
    opened.transport.close();
    const code = await codeOf(blk.resume());
    t.equal(code, 'E_CLOSED', `resume() gave ${code}`);
  });
}
