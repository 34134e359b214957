// RequestQueue.startPolling(spinUs, budget) is public API: a budget that is not 'half' or an
// integer from 0 to 65 536 (-1, NaN, null, 'all') is refused with E_INVALID_ARGUMENT at the call.
// Unchecked, it made every turn take nothing while a turn was rescheduled on every turn of the
// event loop: no request settled and the process spun at 100 % CPU. Found by a breaker (session 22).

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
