// Every public call that takes an options object (exported from index.ts, lib/index.ts and
// lib/sim/index.ts), given a misspelt key or something that is not an object: a misspelt key
// (`queueSzie`, `keepTransprot`) is refused with E_INVALID_ARGUMENT naming it and listing the known
// keys, the closest spelling as the hint (it was ignored: the call ran with the default); null, a
// number, a string, an array is refused with E_INVALID_ARGUMENT (QueueSet.add spread a string into
// queue options; an array read as "no options"). Found by a breaker; the kind is "an API options
// object is not checked", so each options parameter is here, nested ones (features, offer, state)
// included.

import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { NetDriver } from '../../drivers/net/index.js';
import { RngDriver } from '../../drivers/rng/index.js';
import { ConsoleDriver } from '../../drivers/console/index.js';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { negotiateFeatures } from '../../lib/virtio/features.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { VfioPciFunction } from '../../lib/vfio/pci-function.js';
import { VhostUserTransport } from '../../lib/transport/vhost-user/transport.js';
import { VhostVdpaTransport } from '../../lib/transport/vhost-vdpa/transport.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { bit, Feature } from '../../lib/spec/index.js';

/** What the call threw or rejected with (undefined when it did neither). */
async function thrown(call: () => unknown): Promise<unknown> {
  try {
    await call();
    return undefined;
  } catch (e) {
    return e;
  }
}

const NOT_OBJECTS: [string, unknown][] = [['null', null], ['a number', 64], ['a string', 'size'], ['an array', [64]], ['an empty array', []], ['a boolean', true]];

/**
 * `call(options)` refuses every value of NOT_OBJECTS, and `{ [typo]: value }`, with
 * E_INVALID_ARGUMENT (UsageError); for the typo the message names it and lists the known keys
 * (`right` among them), and the hint is `did you mean "right"?`.
 */
async function refusesOptions(t: Test, label: string, call: (options: never) => unknown, typo: string, right: string, value: unknown = 1): Promise<void> {
  const wrong: string[] = [];
  for (const [name, v] of NOT_OBJECTS) {
    const e = await thrown(() => call(v as never));
    if (!(e instanceof UvirtioError) || e.code !== 'E_INVALID_ARGUMENT') wrong.push(`${name}: ${e instanceof UvirtioError ? e.code : String(e)}`);
  }
  t.same(wrong, [], `${label}: a non-object is refused with E_INVALID_ARGUMENT`);
  const e = await thrown(() => call({ [typo]: value } as never));
  t.match(e, { code: 'E_INVALID_ARGUMENT', message: new RegExp(`unknown option "${typo}" \\(known: [^)]*\\b${right}\\b`), hint: `did you mean "${right}"?` },
    `${label}: { ${typo} } is refused, named, with "${right}" as the hint`);
}

t.test('opening: openTransport, VirtioDevice.open (and its features), the drivers', async (t) => {
  await refusesOptions(t, 'openTransport', (v) => openTransport('sim:rng', v), 'timeoutMS', 'timeoutMs', 1000);
  const o = await openTransport('sim:blk');
  t.teardown(() => o.transport.close());
  await refusesOptions(t, 'VirtioDevice.open', (v) => VirtioDevice.open(o.transport, v), 'hybridPolUs', 'hybridPollUs', 100);
  await refusesOptions(t, 'VirtioDevice.open features', (v) => VirtioDevice.open(o.transport, { features: v }), 'requried', 'required', []);
  await refusesOptions(t, 'BlkDriver.open', (v) => BlkDriver.open(o.transport, v), 'queueSzie', 'queueSize', 64);
  t.match(await thrown(() => BlkDriver.open(o.transport, { mergeable: true } as never)), { code: 'E_INVALID_ARGUMENT', message: /unknown option "mergeable"/ }, "another driver's option is refused");
  const blk = await BlkDriver.open(o.transport, {});
  await blk.device.close({ keepTransport: true });
  const n = await openTransport('sim:net');
  t.teardown(() => n.transport.close());
  await refusesOptions(t, 'NetDriver.open', (v) => NetDriver.open(n.transport, v), 'rxBufers', 'rxBuffers', 8);
  const c = await openTransport('sim:console');
  t.teardown(() => c.transport.close());
  await refusesOptions(t, 'ConsoleDriver.open', (v) => ConsoleDriver.open(c.transport, v), 'multiPort', 'multiport', false);
  const r = await openTransport('sim:rng');
  t.teardown(() => r.transport.close());
  await refusesOptions(t, 'RngDriver.open', (v) => RngDriver.open(r.transport, v), 'interupts', 'interrupts', 'poll');
  t.match(await thrown(() => RngDriver.open(r.transport, { stateFeatures: true } as never)), { code: 'E_INVALID_ARGUMENT', message: /unknown option "stateFeatures"/ },
    'RngDriver takes no stateFeatures (it was overwritten silently)');
  const rng = await RngDriver.open(r.transport);
  t.equal((await rng.read(8)).length, 8, 'after all of it the transport still opens');
  await rng.close();
});

t.test('a device: setupQueue, QueueSet.add, close, stop, reinit', async (t) => {
  const o = await openTransport('sim:blk?state=suspend');
  const dev = await VirtioDevice.open(o.transport);
  await refusesOptions(t, 'setupQueue', (v) => dev.setupQueue(0, v), 'szie', 'size', 8);
  const qs = new QueueSet(dev);
  await refusesOptions(t, 'QueueSet.add', (v) => qs.add(0, v), 'drain', 'drains', true);
  t.match(await thrown(() => qs.add(0, { onUsed: () => undefined } as never)), { code: 'E_INVALID_ARGUMENT', message: /unknown option "onUsed"/ }, "QueueSet.add refuses onUsed (the QueueSet's own)");
  const rq = qs.add(0, { size: 8 });
  t.equal(rq.vq.size, 8, 'then a queue is added with the options given');
  await dev.driverOk();
  await refusesOptions(t, 'device.close', (v) => dev.close(v), 'keepTransprot', 'keepTransport', true);
  t.equal(dev.phase, 'live', 'a refused close closed nothing');
  await refusesOptions(t, 'QueueSet.stop', (v) => qs.stop(v), 'timeoutMS', 'timeoutMs', 1000);
  await refusesOptions(t, 'device.stop', (v) => dev.stop(v), 'mechanizm', 'mechanism', 'suspend');
  t.equal(dev.phase, 'live', 'a refused stop stopped nothing');
  await qs.stop();
  const snap = dev.snapshot();
  await refusesOptions(t, 'QueueSet.reinit', (v) => qs.reinit(snap, v), 'tagret', 'target', o.transport);
  t.equal(dev.phase, 'stopped', 'a refused reinit left the device stopped');
  await qs.reinit(snap);
  t.equal(dev.phase, 'live', 'and it reinitialises after all of it');
  await qs.close();
});

t.test('driver calls: stop, reinit, writeZeroes', async (t) => {
  const o = await openTransport('sim:blk?state=suspend&writezeroes=1');
  const blk = await BlkDriver.open(o.transport);
  t.teardown(() => blk.close());
  await refusesOptions(t, 'blk.writeZeroes', (v) => blk.writeZeroes([{ sector: 0, sectors: 1 }], v), 'unmapp', 'unmap', true);
  t.match(await thrown(() => blk.writeZeroes([{ sector: 0, sectors: 1 }], { unmap: 'yes' as never })), { code: 'E_INVALID_ARGUMENT', message: /unmap must be 0 or 1|unmap/ }, 'unmap must be a boolean');
  await refusesOptions(t, 'blk.stop', (v) => blk.stop(v), 'timeout', 'timeoutMs', 1000);
  await blk.stop();
  await refusesOptions(t, 'blk.reinit', (v) => blk.reinit(blk.snapshot(), v), 'timeoutms', 'timeoutMs', 1000);
  await blk.reinit(blk.snapshot());
  t.equal((await blk.read(0, 1)).length, 512, 'the driver still reads');
});

t.test('memory, feature negotiation, other transports, the reference device', async (t) => {
  await refusesOptions(t, 'new HeapDmaAllocator', (v) => new HeapDmaAllocator(v), 'limt', 'limit', 4096);
  await refusesOptions(t, 'negotiateFeatures', (v) => negotiateFeatures(bit(Feature.VERSION_1), v), 'requried', 'required', []);
  // Refused before anything is opened: no VFIO device, socket or vhost-vdpa node is needed.
  await refusesOptions(t, 'VfioPciFunction.open', (v) => VfioPciFunction.open('0000:00:02.0', v), 'sharewith', 'shareWith', undefined);
  await refusesOptions(t, 'VhostUserTransport.open', (v) => VhostUserTransport.open('vhost-user:/nonexistent.sock', '/nonexistent.sock', v), 'replyTimeoutMS', 'replyTimeoutMs', 100);
  await refusesOptions(t, 'VhostVdpaTransport.open', (v) => VhostVdpaTransport.open('vhost-vdpa:/nonexistent', '/nonexistent', v), 'nosuspend', 'noSuspend', true);
  await refusesOptions(t, 'createSimDevice', (v) => createSimDevice(v === null || typeof v !== 'object' || Array.isArray(v) ? v : { type: 'blk', ...(v as object) }), 'queus', 'queues', 2);
  await refusesOptions(t, 'createSimDevice (net)', (v) => createSimDevice(v === null || typeof v !== 'object' || Array.isArray(v) ? v : { type: 'net', ...(v as object) }), 'queuePair', 'queuePairs', 2);
  await refusesOptions(t, 'createSimDevice offer', (v) => createSimDevice({ type: 'rng', offer: v }), 'packd', 'packed', false);
  await refusesOptions(t, 'createSimDevice state', (v) => createSimDevice({ type: 'rng', state: v }), 'ringstate', 'ringState', true);
  await refusesOptions(t, 'createSimDevice discard', (v) => createSimDevice({ type: 'blk', discard: v }), 'maxSector', 'maxSectors', 8);
  await refusesOptions(t, 'createSimDevice size', (v) => createSimDevice({ type: 'console', size: v }), 'col', 'cols', 80);
  t.match(await thrown(() => createSimDevice({ type: 'rng', queues: 2 } as never)), { code: 'E_INVALID_ARGUMENT', message: /createSimDevice options \(type 'rng'\): unknown option "queues"/ },
    "another device type's option is refused");
});
