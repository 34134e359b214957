// SimPciFunction (uvirtio/sim) checks its model's deviceType, queueCount, serve and config, but
// took a model without features, attach, fetchesRequests, receive or reset (a TypeError from
// inside the device, at once or later inside a queue's turn), a deviceType that wraps the 16-bit
// PCI device id (-1 read as 0x103f, 2^40 as 0x1040 — a network card), and a queueCount beyond
// num_queues' le16 (70000 took 0.3 s to build queues no driver can select; 1e7 exhausted memory).
// What should happen: E_INVALID_ARGUMENT naming the model, as for the model's other members.
import t from 'tap';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { SimPciFunction, createSimDevice } from '../../lib/sim/index.js';

t.test('SimPciFunction refuses a model it cannot be built with', async (t) => {
  const sim = createSimDevice({ type: 'rng' });
  t.teardown(() => sim.fn.close());
  const dma = new HeapDmaAllocator();
  t.teardown(() => dma.close());
  const model = sim.fn.device.model;
  const good = {
    address: 'sim:rng', model, dma, ownsDma: false, queueMaxSize: 64, transportFeatures: 0n, completion: 'immediate' as const,
    stopMode: 'drain' as const, msixVectors: 2, classCode: 0xff0000, commonCfgLength: 0x44,
  };
  const like = (change: Record<string, unknown>): object => Object.assign(Object.create(Object.getPrototypeOf(model) as object) as object, model, change);
  const cases: [string, object][] = [
    ['features undefined', like({ features: undefined })], ['features 1 (a number)', like({ features: 1 })], ['features -1n', like({ features: -1n })],
    ['features 2^64', like({ features: 1n << 64n })],
    ['no attach', like({ attach: undefined })], ['no fetchesRequests', like({ fetchesRequests: undefined })],
    ['no receive', like({ receive: undefined })], ['no reset', like({ reset: undefined })],
    ['deviceType -1', like({ deviceType: -1 })], ['deviceType 2^40', like({ deviceType: 2 ** 40 })], ['deviceType 0xf000', like({ deviceType: 0xf000 })],
    ['queueCount 70000', like({ queueCount: 70000 })], ['queueCount 1e7', like({ queueCount: 1e7 })],
  ];
  for (const [what, m] of cases) {
    let error: unknown;
    try {
      new SimPciFunction({ ...good, model: m as never }).close();
    } catch (e) {
      error = e;
    }
    t.equal((error as { code?: string } | undefined)?.code, 'E_INVALID_ARGUMENT', `a model with ${what} is refused`);
    t.match((error as Error | undefined)?.message ?? '', /model/, 'the message names the model');
  }
  const edge = new SimPciFunction({ ...good, model: like({ deviceType: 0xffff - 0x1040, queueCount: 3 }) as never });
  t.equal(edge.configRead16(2), 0xffff, 'the largest device id that fits');
  edge.close();
});
