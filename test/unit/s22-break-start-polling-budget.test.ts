// Breaker (s22): RequestQueue.startPolling(spinUs, budget) — public API (RequestQueue is exported
// by the package) — takes any budget unchecked. A budget that is not 'half', 0 or a positive
// number (-1, NaN, null, 'all') makes turnBudget() return it as is, processUsed(max) then takes
// nothing (`returned < max` is false), and BusyPoll reschedules a turn on every event-loop turn for
// ever: the device returned every chain, no request ever settles, and the process spins at 100 %
// CPU. Expected: E_INVALID_ARGUMENT at the call (as OpenOptions.pollBudget is checked), or every
// completion still taken.

import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import type { PollBudget } from '../../lib/virtio/busy-poll.js';
import { createVirtqueue } from '../../lib/virtio/queue/index.js';
import { RequestQueue, type RequestToken } from '../../lib/virtio/request-queue.js';
import { SplitHandDevice, seg } from '../support/hand-device.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

for (const bad of [-1, Number.NaN, null, 'all'] as unknown[]) {
  t.test(`startPolling(0, ${String(bad)}): refused with E_INVALID_ARGUMENT, or every completion is taken`, async (t) => {
    const dma = new HeapDmaAllocator();
    const vq = createVirtqueue<RequestToken<number>>('split', { index: 0, size: 16, dma, features: { indirect: false, eventIdx: false }, notify: () => undefined });
    const dev = new SplitHandDevice(dma, vq);
    const rq = new RequestQueue<number>(vq);
    let settled = 0;
    for (let i = 0; i < 4; i++) rq.submitCb([seg(0x1000 + i * 0x100, 16)], [], i, () => settled++);
    for (const c of dev.takeAll()) dev.complete(c, 0);
    let code: string | undefined;
    try {
      rq.startPolling(0, bad as PollBudget);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    for (let i = 0; i < 20 && settled < 4; i++) await nextTurn();
    rq.stopPolling();
    t.ok(code === 'E_INVALID_ARGUMENT' || settled === 4,
      `refused (${String(code)}) or all 4 returned chains settled (${settled} did, ${rq.pending} still pending while polling spun)`);
  });
}
