// DEVICE_STATE refusals carry their reason in DEVICE_STATE_CMD (lib/spec DeviceStateRefusal):
// NOT_NOW, UNKNOWN_COMMAND, MALFORMED, MISMATCH, BAD_ADDRESS — and REFUSED (0xffff, no reason)
// only from the injected fault. A LOAD that does not fit the queues already configured is refused
// at once with MISMATCH; DRIVER_OK stays the backstop for what depends on the state registers.
// Through the SDK, the code reaches the driver as E_STATE_REFUSED with the reason in words.

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { createSimDevice, encodeDeviceState, type HeldRequest } from '../../lib/sim/index.js';
import {
  BLK_SECTOR_SIZE, BlkReq, DEVICE_STATE_REFUSAL_REASONS, DeviceStateCmd, DeviceStateRefusal, Feature, Status, bit,
} from '../../lib/spec/index.js';
import { codeOfAsync } from '../support/codes.js';
import { SimDriver, SplitRing, blkRequest, initialState, liveDevice, ruleIds, settle } from '../support/sim-driver.js';

const STATE = bit(Feature.RING_STATE) | bit(Feature.DEVICE_STATE);
const { NOT_NOW, UNKNOWN_COMMAND, MALFORMED, MISMATCH, BAD_ADDRESS } = DeviceStateRefusal;

/** A blk device (2 queues) between FEATURES_OK and DRIVER_OK, queue 0 enabled with 8 entries: LOAD time. */
function atLoadTime() {
  const sim = createSimDevice({ type: 'blk', queues: 2, state: { ringState: true } });
  const d = new SimDriver(sim);
  d.start(STATE);
  const ring = new SplitRing(d, 8);
  d.setupQueue(0, ring, initialState('split'));
  const header = d.alloc(16);
  const status = d.alloc(1);
  const held = (r: Partial<HeldRequest> = {}): HeldRequest => ({
    queue: 0, id: 0, ringDescs: 2,
    segments: [{ addr: header.iova, len: 16, writable: false }, { addr: status.iova, len: 1, writable: true }],
    ...r,
  });
  const load = (blob: Uint8Array): number => d.deviceStateCommand(DeviceStateCmd.LOAD, d.buffer(blob), blob.length);
  return { sim, d, ring, held, load };
}

t.test('NOT_NOW: SAVE while running, LOAD after DRIVER_OK', async (t) => {
  const { sim, d } = liveDevice(createSimDevice({ type: 'blk', state: { ringState: true } }), 'split', STATE);
  t.equal(d.deviceStateCommand(DeviceStateCmd.SAVE, d.alloc(64)), NOT_NOW, 'SAVE');
  t.match(sim.stateRefusal, /STOP/);
  t.equal(d.deviceStateCommand(DeviceStateCmd.LOAD, d.buffer(encodeDeviceState([])), 8), NOT_NOW, 'LOAD');
  t.match(sim.stateRefusal, /FEATURES_OK/);
  t.same(ruleIds(sim), ['state-command-not-now'], 'a driver error, recorded');
});

t.test('UNKNOWN_COMMAND', async (t) => {
  const { sim, d } = atLoadTime();
  t.equal(d.deviceStateCommand(0x33, d.alloc(8)), UNKNOWN_COMMAND);
  t.same(ruleIds(sim), ['state-command-unknown']);
});

t.test('MALFORMED: whatever this device could not have written', async (t) => {
  const { sim, held, load } = atLoadTime();
  const good = encodeDeviceState([held()]);
  const tweak = (f: (b: Uint8Array) => void): Uint8Array => {
    const b = good.slice();
    f(b);
    return b;
  };
  const bad: [string, Uint8Array][] = [
    ['bad magic', tweak((b) => { b[0] = 0x58; })],
    ['version 2', tweak((b) => { b[4] = 2; })],
    ['truncated', good.subarray(0, 30)],
    ['trailing bytes', Uint8Array.from([...good, 0])],
    ['zero ring descriptors', encodeDeviceState([held({ ringDescs: 0 })])],
    ['zero-length segment', encodeDeviceState([held({ segments: [{ addr: 0x1000n, len: 0, writable: false }] })])],
    ['readable after writable', encodeDeviceState([held({ segments: [...held().segments].reverse() })])],
    ['the same request twice', encodeDeviceState([held(), held()])],
  ];
  for (const [why, blob] of bad) {
    t.equal(load(blob), MALFORMED, `${why}: MALFORMED`);
    t.match(sim.stateRefusal, /device state: /, `why: ${sim.stateRefusal ?? ''}`);
  }
  t.same(ruleIds(sim), [], 'a refused state is not a driver error: the mailbox said why');
});

t.test('MISMATCH at LOAD: checked against the device and the queues already configured', async (t) => {
  const net = createSimDevice({ type: 'net', state: { ringState: true } });
  const nd = new SimDriver(net);
  nd.start(STATE);
  const rxHeld = encodeDeviceState([{ queue: 0, id: 0, ringDescs: 1, segments: [{ addr: nd.alloc(64).iova, len: 64, writable: true }] }]);
  t.equal(nd.deviceStateCommand(DeviceStateCmd.LOAD, nd.buffer(rxHeld), rxHeld.length), MISMATCH, 'a receive queue never holds requests');

  const { sim, d, held, load } = atLoadTime();
  const cases: [string, HeldRequest[]][] = [
    ['a queue the device does not have', [held({ queue: 2 })]],
    ['an id beyond the enabled queue\'s 8 entries', [held({ id: 8 })]],
    ['more descriptor slots than the ring', [held({ ringDescs: 9 })]],
    ['two requests of 5 descriptors in a ring of 8', [held({ id: 0, ringDescs: 5 }), held({ id: 1, ringDescs: 5 })]],
    ['a buffer outside the driver\'s memory', [held({ segments: [{ addr: 0xdead_0000n, len: 16, writable: false }] })]],
    ['an id beyond the largest size of a queue not yet enabled', [held({ queue: 1, id: 256 })]],
  ];
  for (const [why, requests] of cases) {
    t.equal(load(encodeDeviceState(requests)), MISMATCH, `${why}: MISMATCH`);
    t.match(sim.stateRefusal, /device state: /, `why: ${sim.stateRefusal ?? ''}`);
  }
  t.equal(load(encodeDeviceState([held({ queue: 1, id: 5 })])), 0, 'a request for queue 1, not yet enabled, passes LOAD…');
  d.setupQueue(1, new SplitRing(d, 4), initialState('split'));
  d.driverOk();
  t.ok(d.status & Status.DEVICE_NEEDS_RESET, '…and DRIVER_OK is the backstop: id 5 is beyond its 4 entries');
  t.same(ruleIds(sim), ['state-held-mismatch']);
});

t.test('BAD_ADDRESS: the mailbox buffer out of reach, for LOAD and for SAVE', async (t) => {
  const { sim, d, load } = atLoadTime();
  t.equal(d.deviceStateCommand(DeviceStateCmd.LOAD, { iova: 0x1234n }, 40), BAD_ADDRESS, 'LOAD');
  t.equal(load(encodeDeviceState([])), 0, 'a good one after it is taken');

  const hold = createSimDevice({ type: 'blk', state: { ringState: true }, mode: 'hold', completion: 'manual' });
  const { d: hd, ring } = liveDevice(hold, 'split', STATE);
  ring.add(blkRequest(hd, BlkReq.OUT, 0n, new Uint8Array(BLK_SECTOR_SIZE)).segs);
  hd.notify(0);
  await settle();
  hd.addStatus(Status.STOP);
  await hd.waitStatus((s) => (s & Status.STOP) !== 0);
  t.ok(hd.deviceStateLen > 0, 'one request held');
  t.equal(hd.deviceStateCommand(DeviceStateCmd.SAVE, { iova: 0x1234n }), BAD_ADDRESS, 'SAVE');
  t.ok(hd.saveDeviceState(), 'a good SAVE after it works');
  t.same(ruleIds(sim), ['state-mailbox-address']);
  t.same(ruleIds(hold), ['state-mailbox-address']);
});

t.test('REFUSED (no reason) and any chosen code come only from the injected fault; clearFaults() ends it', async (t) => {
  const { sim, d, load } = atLoadTime();
  sim.injectFault({ kind: 'device-state-refuse' });
  t.equal(load(encodeDeviceState([])), DeviceStateCmd.REFUSED, 'LOAD: 0xffff');
  sim.clearFaults();
  sim.injectFault({ kind: 'device-state-refuse', command: 'save', reason: MISMATCH });
  t.equal(load(encodeDeviceState([])), 0, 'a SAVE-only refusal leaves LOAD alone');
  sim.clearFaults();
  t.same(ruleIds(sim), [], 'an injected refusal is not the driver\'s fault');
  d.driverOk();
  t.notOk(d.status & Status.DEVICE_NEEDS_RESET);
});

t.test('through the SDK: E_STATE_REFUSED names the reason', async (t) => {
  const src = await openTransport('sim:blk?state=ring-state&mode=hold&latency=50');
  const blk = await BlkDriver.open(src.transport, { layout: 'split' });
  t.teardown(() => blk.close());
  const write = blk.write(0, new Uint8Array(BLK_SECTOR_SIZE).fill(7));
  write.catch(() => undefined); // the failed reinit leaves it to the driver's close
  await new Promise((r) => setImmediate(r));
  await blk.stop({ mechanism: 'ring-state' });
  const snap = blk.snapshot();
  t.ok(snap.deviceState && snap.deviceState.bytes.length > 0, 'a held request travels in the snapshot');
  src.sim!.injectFault({ kind: 'device-state-refuse', command: 'load', reason: MISMATCH });
  let message = '';
  const code = await codeOfAsync(blk.reinit(snap).catch((e: Error) => {
    message = e.message;
    throw e;
  }));
  t.equal(code, 'E_STATE_REFUSED');
  t.match(message, DEVICE_STATE_REFUSAL_REASONS[MISMATCH]!, `the words for MISMATCH: ${message}`);
  t.match(message, /0xff04/);
  src.sim!.clearFaults();
});
