// QueueSet.close() settles what the device already returned (with what it wrote) before it
// rejects what is still pending with E_CLOSED: a polling turn's budget (OpenOptions.pollBudget)
// leaves finished work in the used ring at every turn, and a completion callback may close the
// driver in the middle of a batch. Budget 0 (take all per turn) is the control. Found by a
// breaker (session 22); failed before close() took the used ring.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import type { PollBudget } from '../../lib/virtio/busy-poll.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function bringUp(pollBudget: PollBudget | undefined) {
  const sim = createSimDevice({ type: 'rng', completion: 'manual' });
  Object.defineProperty(sim.fn, 'deviceOnDriverThread', { value: false }); // the default budget is then 'half'
  const device = await VirtioDevice.open(new VirtioPciTransport(sim.fn), { interrupts: 'poll', pollSpinUs: 0, ...(pollBudget === undefined ? {} : { pollBudget }) });
  const qs = new QueueSet(device);
  const rq = qs.add<number>(0, { size: 128 });
  await device.driverOk();
  const buf = device.dma.alloc(64 * 64, 64);
  const outcome = new Map<number, string[]>();
  const submit = (i: number, then?: (token: number) => void): void =>
    rq.submitCb([], [{ addr: buf.iova + BigInt(i * 64), len: 16 }], i, (e, _len, token) => {
      outcome.set(token, [...(outcome.get(token) ?? []), e ? String((e as { code?: string }).code) : 'ok']);
      then?.(token);
    });
  return { sim, device, qs, submit, outcome };
}

function tally(outcome: Map<number, string[]>): Record<string, number> {
  const codes: Record<string, number> = {};
  for (const v of outcome.values()) for (const c of v) codes[c] = (codes[c] ?? 0) + 1;
  return codes;
}

for (const budget of [undefined, 1, 0] as const) {
  t.test(`pollBudget ${String(budget ?? "default ('half')")}: close() after the device returned every request settles each with its completion, not E_CLOSED`, async (t) => {
    const { sim, qs, submit, outcome } = await bringUp(budget);
    for (let i = 0; i < 64; i++) submit(i);
    await turn();
    t.equal(sim.completeNow(), 64, 'the device finished all 64');
    await turn(); // one polling turn: with a budget it takes only part of them
    await qs.close();
    await turn();
    t.equal(outcome.size, 64, 'every request settled');
    t.ok([...outcome.values()].every((v) => v.length === 1), 'each once');
    t.same(tally(outcome), { ok: 64 }, 'what the device returned before the close is a completion, as with budget 0');
  });
}

t.test("default budget: a completion callback that closes the driver: the rest of what the device returned still completes", async (t) => {
  const { sim, qs, submit, outcome } = await bringUp(undefined);
  let closing: Promise<void> | undefined;
  for (let i = 0; i < 64; i++) submit(i, (token) => { if (token === 0) closing = qs.close(); });
  await turn();
  t.equal(sim.completeNow(), 64);
  for (let i = 0; i < 5 && !closing; i++) await turn();
  await closing;
  await turn();
  t.equal(outcome.size, 64, 'every request settled');
  t.same(tally(outcome), { ok: 64 }, 'as with budget 0, the returned chains are not rejected');
});
