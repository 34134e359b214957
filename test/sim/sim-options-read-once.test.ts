// The reference device's entry points refused unknown option keys but read their options object
// more than once: createSimDevice read `dma` twice (the memory it uses, then whether it owns it),
// a blk `discard` / `writeZeroes`, a net `queuePairs` / `peer` and a console `size` twice, and a
// `completion: { latencyMs }` once for the check and again on every request; injectFault read a
// fault's `queue` four times; a console's port specs, and decodeDeviceState's limits (once per
// request), the same. A getter or a Proxy answering differently on each read made the value checked
// not the value used. What should happen (as everywhere in the SDK, lib/util/options.ts
// optionsObject): each option is read once, into a copy the checks and the device both use.

import t, { type Test } from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { HeapDmaAllocator } from '../../lib/mem/dma.js';
import { SimPciFunction, createSimDevice, decodeDeviceState, encodeDeviceState } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { codeOf, settledCode } from '../support/codes.js';

/** `target` behind a Proxy that counts the reads of each string key. */
function counted<T extends object>(target: T): { value: T; reads: Record<string, number> } {
  const reads: Record<string, number> = {};
  const value = new Proxy(target, {
    get(o, key, receiver) {
      if (typeof key === 'string') reads[key] = (reads[key] ?? 0) + 1;
      return Reflect.get(o, key, receiver) as unknown;
    },
  });
  return { value, reads };
}

/** Every key given was read, and no key was read more than once. */
function readOnce(t: Test, what: string, given: object, reads: Record<string, number>): void {
  const twice = Object.entries(reads).filter(([, n]) => n !== 1).map(([k, n]) => `${k} ×${n}`);
  t.same(twice, [], `${what}: no key read more than once`);
  t.same(Object.keys(given).filter((k) => reads[k] !== 1), [], `${what}: every key given was read`);
}

t.test('createSimDevice reads each option once, nested ones too', async (t) => {
  const dma = new HeapDmaAllocator();
  t.teardown(() => dma.close());
  const discard = counted({ maxSectors: 8, maxSegments: 2, alignment: 1 });
  const writeZeroes = counted({ maxSectors: 8, mayUnmap: false });
  const offer = counted({ packed: true, indirect: false });
  const state = counted({ ringState: true, suspend: true });
  const completion = counted({ latencyMs: 0 });
  const blkGiven = {
    type: 'blk' as const, queueMaxSize: 64, completion: completion.value, msixVectors: 3, mode: 'hold' as const, offer: offer.value, state: state.value, dma,
    capacitySectors: 16, discard: discard.value, writeZeroes: writeZeroes.value, serial: 'once', queues: 1, readOnly: false, blkSize: 512, segMax: 10,
    sizeMax: 4096, failSectors: [3], unsupportedTypes: [],
  };
  const blk = counted(blkGiven);
  const b = createSimDevice(blk.value);
  t.teardown(() => b.fn.close());
  readOnce(t, 'blk options', blkGiven, blk.reads);
  readOnce(t, 'discard', { maxSectors: 8, maxSegments: 2, alignment: 1 }, discard.reads);
  readOnce(t, 'writeZeroes', { maxSectors: 8, mayUnmap: false }, writeZeroes.reads);
  readOnce(t, 'offer', { packed: true, indirect: false }, offer.reads);
  readOnce(t, 'state', { ringState: true, suspend: true }, state.reads);
  readOnce(t, 'completion', { latencyMs: 0 }, completion.reads);

  const aGiven = { type: 'net' as const, mac: '52:54:00:00:00:01', queuePairs: 2, mergeable: true };
  const a = counted(aGiven);
  const nicA = createSimDevice(a.value);
  t.teardown(() => nicA.fn.close());
  readOnce(t, 'net options', aGiven, a.reads);
  const bGiven = { type: 'net' as const, peer: nicA, queuePairs: 1 };
  const nb = counted(bGiven);
  const nicB = createSimDevice(nb.value);
  t.teardown(() => nicB.fn.close());
  readOnce(t, 'net options with a peer', bGiven, nb.reads);

  const size = counted({ cols: 100, rows: 40 });
  const port0 = counted({ id: 0, console: true });
  const port3 = counted({ id: 3, name: 'three', hostOpen: false, loopback: false });
  const cGiven = { type: 'console' as const, multiport: true, maxPorts: 4, ports: [port0.value, port3.value], emergWrite: false, loopback: true, size: size.value, staleReadMs: 0 };
  const c = counted(cGiven);
  const con = createSimDevice(c.value);
  t.teardown(() => con.fn.close());
  readOnce(t, 'console options', cGiven, c.reads);
  readOnce(t, 'size', { cols: 100, rows: 40 }, size.reads);
  readOnce(t, 'ports[0]', { id: 0, console: true }, port0.reads);
  readOnce(t, 'ports[1]', { id: 3, name: 'three', hostOpen: false, loopback: false }, port3.reads);
  t.same(con.portIds, [0, 3], 'the ports given');
  t.equal(con.port(3)?.hostOpen, false, 'with the fields given');

  const later = counted({ id: 2, name: 'two' });
  con.addPort(later.value);
  readOnce(t, 'addPort spec', { id: 2, name: 'two' }, later.reads);
  t.equal(con.port(2)?.name, 'two');
  t.equal(codeOf(() => con.addPort({ id: 1, hostopen: false } as never)), 'E_INVALID_ARGUMENT', 'a misspelt port spec key is refused');
  t.equal(codeOf(() => createSimDevice({ type: 'console', ports: 'two' as never })), 'E_INVALID_ARGUMENT', 'ports neither a count nor an array is refused');
  // The values of a port spec were not checked: a name of 7 went to the driver as "7", 'no' as
  // hostOpen opened the port, resize(-1, …) wrote 65535. The kind is "a nested spec checked for its
  // keys, not its values".
  for (const [field, value] of [['name', 7], ['name', 'x'.repeat(5000)], ['console', 'yes'], ['hostOpen', 'no'], ['loopback', 1]] as const) {
    t.equal(codeOf(() => con.addPort({ id: 1, [field]: value } as never)), 'E_INVALID_ARGUMENT', `addPort refuses ${field} ${String(value).slice(0, 12)}`);
    t.equal(codeOf(() => createSimDevice({ type: 'console', ports: [{ id: 0, [field]: value }] as never })), 'E_INVALID_ARGUMENT', `createSimDevice refuses ports[0].${field} ${String(value).slice(0, 12)}`);
  }
  t.same(con.portIds, [0, 2, 3], 'no refused spec added a port');
  for (const [cols, rows] of [[-1, 25], [80, 65536], [80.5, 25], [Number.NaN, 25]]) {
    t.equal(codeOf(() => con.resize(cols!, rows!)), 'E_INVALID_ARGUMENT', `resize(${cols}, ${rows}) is refused`);
  }

  const rGiven = { type: 'rng' as const, seed: 7 };
  const r = counted(rGiven);
  const rng = createSimDevice(r.value);
  t.teardown(() => rng.fn.close());
  readOnce(t, 'rng options', rGiven, r.reads);
});

t.test('a dma getter answering the caller\'s memory, then nothing: the device does not close memory it does not own', async (t) => {
  const dma = new HeapDmaAllocator();
  t.teardown(() => dma.close());
  let reads = 0;
  const sim = createSimDevice({
    type: 'blk',
    get dma(): HeapDmaAllocator | undefined {
      reads++;
      return reads === 1 ? dma : undefined;
    },
  });
  t.equal(sim.dma, dma, 'the device uses the memory given');
  sim.fn.close();
  t.equal(reads, 1, 'dma read once');
  t.equal(codeOf(() => dma.free(dma.alloc(64))), 'no error', 'the caller\'s memory is still open after the device closed');
});

t.test('a completion whose latencyMs answers 0 to the check, then an hour: requests complete at once', async (t) => {
  let reads = 0;
  const completion = {
    get latencyMs(): number {
      reads++;
      return reads === 1 ? 0 : 3_600_000;
    },
  };
  const sim = createSimDevice({ type: 'blk', completion });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => blk.close());
  t.equal(await settledCode(blk.read(0, 8), 5000), 'ok', 'the read completes with the latency checked (0 ms), not HANG');
  t.equal(reads, 1, 'latencyMs read once');
  t.equal(codeOf(() => createSimDevice({ type: 'blk', completion: 'bogus' as never })), 'E_INVALID_ARGUMENT', 'a completion that is neither immediate, manual nor { latencyMs } is refused');
  t.equal(codeOf(() => createSimDevice({ type: 'blk', completion: { latencyMs: Infinity } })), 'E_INVALID_ARGUMENT', 'an endless latency is refused');
  t.equal(codeOf(() => createSimDevice({ type: 'blk', completion: { latencyMS: 5 } as never })), 'E_INVALID_ARGUMENT', 'a misspelt latencyMs is refused');
});

t.test('injectFault reads each field once: the queue checked is the queue faulted', async (t) => {
  const sim = createSimDevice({ type: 'blk', completion: 'manual' });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => blk.close());
  const given = { kind: 'bad-used-id' as const, queue: 0, count: 1 };
  const f = counted(given);
  let queueReads = 0;
  // queue: 0 (the device's one queue) to the first read, 7 (no such queue) to any other.
  Object.defineProperty(given, 'queue', { enumerable: true, get: () => (++queueReads === 1 ? 0 : 7) });
  sim.injectFault(f.value);
  readOnce(t, 'fault', given, f.reads);
  t.equal(queueReads, 1, 'queue read once');
  const read = settledCode(blk.read(0, 8), 5000);
  for (let i = 0; i < 50 && sim.held < 1; i++) await new Promise((r) => setImmediate(r));
  sim.completeNow();
  t.equal(await read, 'E_DEVICE_BAD_USED_ID', 'the fault hits queue 0, the queue that was checked');
});

t.test('decodeDeviceState reads its limits once', async (t) => {
  const blob = encodeDeviceState([
    { queue: 0, id: 1, ringDescs: 1, segments: [{ addr: 0x1000n, len: 16, writable: false }] },
    { queue: 0, id: 2, ringDescs: 1, segments: [{ addr: 0x2000n, len: 16, writable: true }] },
  ]);
  const given = { queueCount: 1, queueMaxSize: 256 };
  const limits = counted(given);
  t.equal(decodeDeviceState(blob, limits.value).length, 2, 'both held requests decoded');
  readOnce(t, 'limits', given, limits.reads);
  t.equal(codeOf(() => decodeDeviceState(blob, { queueCount: 1, queueMaxsize: 256 } as never)), 'E_INVALID_ARGUMENT', 'a misspelt limit is refused');
});

/** Options a SimPciFunction can be built with: an rng model and memory of its own, closed at teardown. */
function functionOptions(t: Test) {
  const sim = createSimDevice({ type: 'rng' });
  t.teardown(() => sim.fn.close());
  const dma = new HeapDmaAllocator();
  t.teardown(() => dma.close());
  return {
    address: 'sim:rng', model: sim.fn.device.model, dma, ownsDma: false, queueMaxSize: 64, transportFeatures: 0n, completion: 'immediate' as const,
    stopMode: 'drain' as const, msixVectors: 2, classCode: 0xff0000, commonCfgLength: 0x44,
  };
}

t.test('SimPciFunction reads its options once', async (t) => {
  const given = functionOptions(t);
  const o = counted(given);
  const fn = new SimPciFunction(o.value);
  t.teardown(() => fn.close());
  readOnce(t, 'SimPciFunction options', given, o.reads);
});

// SimPciFunction is exported (uvirtio/sim) but checked only its keys, so a caller building one
// directly with queueMaxSize 3, completion 'soon' or msixVectors 0 got a device that misbehaved
// later (a ring size no driver can use, a completion read as a latency of undefined); a latency
// beyond setTimeout's 2^31 - 1 ms, through createSimDevice too, completed after 1 ms. The kind is
// "an exported constructor trusts values its factory checked": every value is checked where the
// function is built, createSimDevice or not.
t.test('SimPciFunction refuses values it cannot be built with, naming the option', async (t) => {
  const good = functionOptions(t);
  const fn = new SimPciFunction(good);
  fn.close();
  t.pass('the good options build a function');
  const cases: [string, Record<string, unknown>][] = [
    ['queueMaxSize', { queueMaxSize: 3 }], ['queueMaxSize', { queueMaxSize: 65536 }],
    ['completion', { completion: 'soon' }], ['completion', { completion: { latencyMs: -1 } }], ['completion', { completion: { latencyMs: 2 ** 31 } }], ['completion', { completion: null }],
    ['stopMode', { stopMode: 'keep' }], ['msixVectors', { msixVectors: 0 }], ['msixVectors', { msixVectors: 1.5 }],
    ['classCode', { classCode: 0x1_000_000 }], ['commonCfgLength', { commonCfgLength: 0x40 }],
    ['transportFeatures', { transportFeatures: 1n }], ['transportFeatures', { transportFeatures: 5 }],
    ['address', { address: '' }], ['model', { model: {} }], ['dma', { dma: {} }], ['ownsDma', { ownsDma: 'yes' }],
  ];
  for (const [option, change] of cases) {
    let error: unknown;
    try {
      new SimPciFunction({ ...good, ...change } as never).close();
    } catch (e) {
      error = e;
    }
    const shownValue = JSON.stringify(Object.values(change)[0], (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
    t.equal((error as { code?: string } | undefined)?.code, 'E_INVALID_ARGUMENT', `${option} ${shownValue} is refused`);
    t.match((error as Error | undefined)?.message ?? '', option === 'completion' ? /completion/ : option, `the message names ${option}`);
  }
  t.equal(codeOf(() => createSimDevice({ type: 'blk', completion: { latencyMs: 2 ** 31 } })), 'E_INVALID_ARGUMENT', 'createSimDevice refuses a latency setTimeout would shorten to 1 ms');
  const longest = createSimDevice({ type: 'blk', completion: { latencyMs: 2 ** 31 - 1 } });
  longest.fn.close();
  t.pass('the longest latency setTimeout keeps (2^31 - 1 ms) is taken');
});
