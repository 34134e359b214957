// OpenOptions values that are objects without a usable string form (no prototype, a throwing
// toString or Symbol.toPrimitive) or symbols are refused with E_INVALID_ARGUMENT and a hint, the
// device untouched — for pollBudget and for every integer option checked beside it. The error
// message names such a value by its kind (lib/util/shown.ts): building it with String() threw a
// TypeError without a code, or the object's own error. Found by a breaker (session 22).

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import type { PollBudget } from '../../lib/virtio/busy-poll.js';

const odd: [string, unknown][] = [
  ['an object without a prototype', Object.create(null)],
  ['an object whose toString throws', { toString(): string { throw new Error('not printable'); } }],
  ['an object whose Symbol.toPrimitive throws', { [Symbol.toPrimitive](): never { throw new Error('not printable'); } }],
  ['a symbol', Symbol('x')],
];

for (const [what, bad] of odd) for (const option of ['pollBudget', 'pollSpinUs', 'hybridPollUs', 'requestTimeoutMs', 'resetTimeoutMs'] as const) {
  t.test(`${option} ${what}: E_INVALID_ARGUMENT with a hint, device untouched`, async (t) => {
    const dev = createSimDevice({ type: 'blk', capacitySectors: 64 });
    let caught: unknown;
    try {
      const blk = await BlkDriver.open(new VirtioPciTransport(dev.fn), { [option]: bad } as unknown as { pollBudget: PollBudget });
      await blk.close();
    } catch (e) {
      caught = e;
    }
    const e = caught as { code?: string; hint?: string; message?: string } | undefined;
    t.equal(e?.code, 'E_INVALID_ARGUMENT', `refused with the stable code (got ${String((caught as Error | undefined)?.name)}: ${e?.message})`);
    t.ok(typeof e?.hint === 'string' && e.hint.length > 0, 'with a hint');
    t.equal(dev.fn.device.common.status, 0, 'the device was not touched');
  });
}
