// BlkDriver.readDma against a misbehaving device (lib/sim/virtio/faults.ts) and a closing driver:
// what a user relies on is that each read settles with the fault's own typed error (never a success
// with the region's stale bytes), that the device never writes outside the bytes asked for, and
// that after recover() the same region reads the disk's bytes.

import t from 'tap';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { codeOfAsync } from '../support/codes.js';

const pattern = (n: number, seed: number): Uint8Array => new Uint8Array(n).map((_, i) => (i * 13 + seed * 5) & 0xff);

const FAULTS: [string, string][] = [
  ['bad-used-id', 'E_DEVICE_BAD_USED_ID'],
  ['used-len-overflow', 'E_DEVICE_BAD_USED_LEN'],
  ['used-index-jump', 'E_DEVICE_USED_INDEX_JUMP'],
  ['used-len-short', 'E_DEVICE_SHORT_USED_LEN'],
  ['bad-blk-status', 'E_DEVICE_BAD_REPLY'],
  ['completion-silence', 'E_DEVICE_UNRESPONSIVE'],
];

for (const [kind, expected] of FAULTS) {
  t.test(`${kind}: readDma rejects with ${expected}; nothing outside the range is written; recover() reads again`, async (t) => {
    const sim = createSimDevice({ type: 'blk', capacitySectors: 1024 });
    const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { maxTransfer: 16 * 1024, depth: 4, requestTimeoutMs: 300, layout: 'split' });
    t.teardown(() => blk.close());
    const data = pattern(4096, 1);
    await blk.write(8, data);
    const region = blk.device.dma.alloc(3 * 4096);
    region.bytes.fill(0xee);
    sim.injectFault({ kind } as Parameters<typeof sim.injectFault>[0]);
    t.equal(await codeOfAsync(blk.readDma(8, 8, region, 4096)), expected);
    t.ok(region.bytes.subarray(0, 4096).every((b) => b === 0xee) && region.bytes.subarray(8192).every((b) => b === 0xee), 'nothing outside the range');
    sim.clearFaults();
    if (blk.device.failure) await blk.recover();
    t.same(await blk.readDma(8, 8, region, 4096), data, 'the disk\'s bytes afterwards');
  });
}

t.test('close() with readDma in flight and waiting: each rejects typed; later calls E_CLOSED', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 1024, completion: { latencyMs: 20 } });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { maxTransfer: 16 * 1024, depth: 2 });
  const region = blk.device.dma.alloc(16 * 4096);
  const reads = Array.from({ length: 8 }, (_, i) => codeOfAsync(blk.readDma(i * 8, 8, region, i * 4096)));
  await blk.close();
  const codes = await Promise.all(reads);
  t.ok(codes.every((c) => c === 'no error' || c === 'E_CLOSED'), codes.join(','));
  t.equal(await codeOfAsync(blk.readDma(0, 8, region)), 'E_CLOSED');
});

t.test('read-only, 4 queues, 4096-byte blocks: readDma reads; unaligned is refused before the device', async (t) => {
  const sim = createSimDevice({ type: 'blk', capacitySectors: 1024, readOnly: true, queues: 4, blkSize: 4096 });
  const blk = await BlkDriver.open(new VirtioPciTransport(sim.fn), { maxTransfer: 16 * 1024 });
  t.teardown(() => blk.close());
  t.equal(blk.queueCount, 4);
  const region = blk.device.dma.alloc(16 * 4096);
  const got = await Promise.all(Array.from({ length: 16 }, (_, i) => blk.readDma(i * 8, 8, region, i * 4096)));
  t.equal(got.length, 16);
  t.equal(await codeOfAsync(blk.readDma(1, 8, region)), 'E_INVALID_ARGUMENT', 'start not on a block');
  t.equal(await codeOfAsync(blk.readDma(0, 4, region)), 'E_INVALID_ARGUMENT', 'length not whole blocks');
});
