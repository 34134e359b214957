// An options object's keys are checked (E_INVALID_ARGUMENT for a key the call does not take) only
// where they are own and enumerable, but the options are read with ordinary property reads, which
// see inherited keys too: options built on a prototype (Object.create(defaults)) or as a class with
// getters have their documented keys honoured — queueSize 8 from the prototype gives a queue of 8 —
// while a misspelt one on the prototype (`queueSzie`), or a non-enumerable one, is ignored and the
// call runs on its defaults: the very fault the key check was added for. What should happen: every
// key the call can see (own or inherited, short of Object.prototype; symbols aside) is checked, so
// the misspelt key is refused with the closest spelling, and the documented ones keep working.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { settledCode } from '../support/codes.js';

const misspelt: Record<string, () => object> = {
  'inherited from a prototype': () => Object.create({ queueSzie: 8 }) as object,
  'a getter of a class': () => new (class { get queueSzie(): number { return 8; } })(),
  'own, not enumerable': () => Object.defineProperty({}, 'queueSzie', { value: 8 }),
};

for (const [how, make] of Object.entries(misspelt)) {
  t.test(`BlkDriver.open: a misspelt key ${how} is refused E_INVALID_ARGUMENT`, async (t) => {
    const sim = createSimDevice({ type: 'blk' });
    const transport = new VirtioPciTransport(sim.fn);
    let opened: BlkDriver | undefined;
    const code = await settledCode(BlkDriver.open(transport, make()).then((b) => { opened = b; }), 3000);
    t.teardown(() => (opened ? opened.close() : transport.close()));
    t.equal(code, 'E_INVALID_ARGUMENT', `refused (opened with a queue of ${opened?.requests.vq.size ?? '-'})`);
  });
}

t.test('VirtioDevice.close and open: a misspelt key on the prototype is refused', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const transport = new VirtioPciTransport(sim.fn);
  const refused = await settledCode(VirtioDevice.open(transport, Object.create({ resetTimeotMs: 50 }) as object)
    .then((d) => d.close({ keepTransport: true })), 3000);
  t.equal(refused, 'E_INVALID_ARGUMENT', 'open refuses resetTimeotMs');
  const dev = await VirtioDevice.open(transport, {});
  t.equal(await settledCode(dev.close(Object.create({ keepTransprot: true }) as object), 3000), 'E_INVALID_ARGUMENT', 'close refuses keepTransprot');
  await dev.close();
});

t.test('documented keys inherited or as getters keep working', async (t) => {
  for (const options of [Object.create({ queueSize: 8, layout: 'split' }) as object, new (class { get queueSize(): number { return 8; } })()]) {
    const sim = createSimDevice({ type: 'blk' });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), options);
    t.equal(blk.requests.vq.size, 8, 'queueSize 8 is used');
    await blk.close();
  }
});
