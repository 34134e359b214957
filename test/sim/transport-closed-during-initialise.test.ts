// The transport is closed (a dying back-end, or its owner) while open(), recover() or reinit()
// waits for the device's reset, i.e. after the up-front closed-transport check passed. Expected
// E_CLOSED naming the transport, as for a transport closed before the call. Found by a breaker
// (fixed: the closed registers read as zeros and the call rejected E_FEATURES_NOT_OK; initialise()
// now asks after each wait).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { settledCode } from '../support/codes.js';

const codeOf = (p: Promise<unknown>): Promise<string> => settledCode(p);
import type { VirtioTransport } from '../../lib/transport/types.js';

/** From now on, the transport closes itself as soon as its next reset() has completed. */
function dieAfterNextReset(tr: VirtioTransport): void {
  const reset = tr.reset.bind(tr);
  tr.reset = async (ms: number) => {
    await reset(ms);
    tr.close();
  };
}

t.test('VirtioDevice.open: transport closed during the reset → E_CLOSED', async (t) => {
  const opened = await openTransport('sim:rng');
  dieAfterNextReset(opened.transport);
  { const code = await codeOf(VirtioDevice.open(opened.transport)); t.equal(code, 'E_CLOSED', `rejected with ${code}`); }
});

t.test('recover(): transport closed during the reset → E_CLOSED', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 3000 });
  t.teardown(() => blk.close());
  opened.sim!.injectFault({ kind: 'needs-reset' });
  for (const end = Date.now() + 3000; blk.device.phase !== 'needs-reset' && Date.now() < end;) await new Promise((r) => setTimeout(r, 5));
  t.equal(blk.device.phase, 'needs-reset');
  dieAfterNextReset(opened.transport);
  { const code = await codeOf(blk.recover()); t.equal(code, 'E_CLOSED', `rejected with ${code}`); }
});

t.test('reinit() on the same device: its transport closed during the reset → E_CLOSED, device still stopped', async (t) => {
  const opened = await openTransport('sim:blk?latency=5');
  const blk = await BlkDriver.open(opened.transport, { requestTimeoutMs: 3000 });
  t.teardown(() => blk.close());
  await blk.stop({ mechanism: 'ring-state' });
  const snap = blk.snapshot();
  dieAfterNextReset(opened.transport);
  { const code = await codeOf(blk.reinit(snap)); t.equal(code, 'E_CLOSED', `rejected with ${code}`); }
  t.not(blk.device.phase, 'live');
});

t.test('reinit() onto a target closed during its reset → E_CLOSED; a retry onto a live target loses nothing', async (t) => {
  const src = await openTransport('sim:blk?latency=5');
  const dst = await openTransport('sim:blk?latency=5', { shareWith: src });
  const dst2 = await openTransport('sim:blk?latency=5', { shareWith: src });
  const blk = await BlkDriver.open(src.transport, { requestTimeoutMs: 5000 });
  t.teardown(() => blk.close());
  const reads = [blk.read(3, 1), blk.read(4, 1)];
  await blk.stop();
  const snap = blk.snapshot();
  dieAfterNextReset(dst.transport);
  { const code = await codeOf(blk.reinit(snap, { target: dst.transport })); t.equal(code, 'E_CLOSED', `rejected with ${code}`); }
  t.equal(blk.device.phase, 'stopped');
  t.equal(await codeOf(blk.reinit(snap, { target: dst2.transport })), 'ok');
  t.same(await Promise.all(reads.map(codeOf)), ['ok', 'ok'], 'the reads in flight at the stop complete');
});
