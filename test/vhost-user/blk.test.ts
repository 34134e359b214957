// BlkDriver over the vhost-user transport against a real qemu-storage-daemon: the negotiation,
// I/O in interrupt and polling mode, the data checked against the image file after the daemon has
// exited; packed rings when the daemon offers them.
import fs from 'node:fs';
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { VhostUserTransport } from '../../lib/transport/vhost-user/transport.js';
import { protocolFeatureNames } from '../../lib/transport/vhost-user/protocol.js';
import { DeviceConfig } from '../../lib/virtio/config.js';
import { Feature, featureNames, hasFeature } from '../../lib/spec/index.js';
import { Daemon, daemonForTest, makeImage } from './daemon.js';

function pattern(seed: number, bytes: number): Uint8Array {
  return Uint8Array.from({ length: bytes }, (_, i) => (seed * 131 + i * 7 + (i >> 9)) & 0xff);
}

t.test('handshake: features, protocol features, queues, config', async (t) => {
  const img = makeImage(16);
  const d = await Daemon.start(img);
  t.teardown(async () => {
    await d.kill();
    img.remove();
  });
  const dev = await openTransport(d.address);
  const vt = dev.transport as VhostUserTransport;
  t.ok(vt instanceof VhostUserTransport);
  t.ok(hasFeature(vt.deviceFeatures(), Feature.VERSION_1), `VERSION_1 offered (${featureNames(vt.deviceFeatures(), 2)})`);
  t.notOk(hasFeature(vt.deviceFeatures(), 30), 'VHOST_USER_F_PROTOCOL_FEATURES is not shown as a virtio feature');
  t.comment(`offered protocol features: ${protocolFeatureNames(vt.offeredProtocolFeatures)}`);
  t.equal(vt.numQueues, 1);
  t.equal(new DeviceConfig(() => vt).read64(0), BigInt(img.bytes / 512), 'capacity from GET_CONFIG');
  vt.close();
});

const MODE_NAMES = { auto: 'call-eventfd interrupts', hybrid: 'call-eventfd interrupts with poll-then-sleep (hybridPollUs)', poll: 'polling' } as const;
for (const mode of ['auto', 'hybrid', 'poll'] as const) {
  const interrupts = mode === 'poll' ? 'poll' : 'auto';
  t.test(`split ring, ${MODE_NAMES[mode]}: writes and reads, image holds the data`, async (t) => {
    const img = makeImage(16);
    const d = await Daemon.start(img);
    t.teardown(async () => {
      await d.kill('SIGKILL');
      img.remove();
    });
    const dev = await openTransport(d.address);
    const blk = await BlkDriver.open(dev.transport, { layout: 'split', interrupts, depth: 16, hybridPollUs: mode === 'hybrid' ? 500 : 0 });
    t.equal(blk.device.interruptMode, interrupts === 'auto' ? 'msix' : 'poll');
    t.equal(blk.device.hybridPollUs, mode === 'hybrid' ? 500 : 0);
    t.equal(blk.device.layout, 'split');
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 64; i++) writes.push(blk.write(i * 16, pattern(i, 8192)));
    await Promise.all(writes);
    await blk.flush();
    for (let i = 0; i < 64; i += 7) t.same(await blk.read(i * 16, 16), pattern(i, 8192), `read back extent ${i}`);
    t.match(await blk.getId(), /.*/, 'GET_ID answers');
    await blk.close();
    t.equal(await d.kill(), 0, 'the daemon exits cleanly on SIGTERM');
    const disk = fs.readFileSync(img.file);
    let bad = 0;
    for (let i = 0; i < 64; i++) if (Buffer.compare(disk.subarray(i * 8192, i * 8192 + 8192), Buffer.from(pattern(i, 8192))) !== 0) bad++;
    t.equal(bad, 0, 'every extent is in the image file after the daemon exited');
  });
}

/** Whether the daemon offers packed rings (asked once, up front, so the test can skip with the reason). */
async function packedOffered(): Promise<boolean> {
  const img = makeImage(1);
  const d = await Daemon.start(img, 'probe');
  try {
    const dev = await openTransport(d.address);
    const offered = hasFeature(dev.transport.deviceFeatures(), Feature.RING_PACKED);
    dev.transport.close();
    return offered;
  } finally {
    await d.kill('SIGKILL');
    img.remove();
  }
}

const packed = await packedOffered();
if (packed) {
  t.test('packed ring', async (t) => {
    const d = await daemonForTest(t);
    const dev = await openTransport(d.address);
    const blk = await BlkDriver.open(dev.transport, { layout: 'packed' });
    t.equal(blk.device.layout, 'packed');
    for (let i = 0; i < 32; i++) await blk.write(i * 8, pattern(i, 4096));
    for (let i = 0; i < 32; i++) t.same(await blk.read(i * 8, 8), pattern(i, 4096));
    await blk.close();
  });
} else {
  // libvhost-user has split rings only: asking for packed is refused, and the same transport
  // then serves a split ring (the refused negotiation left nothing behind).
  t.test('packed ring: not offered (qemu-storage-daemon 7.2), refused with E_FEATURE_MISSING; split works after', async (t) => {
    const img = makeImage(16);
    const d = await Daemon.start(img);
    t.teardown(async () => {
      await d.kill('SIGKILL');
      img.remove();
    });
    const dev = await openTransport(d.address);
    const e = await BlkDriver.open(dev.transport, { layout: 'packed' }).then(() => null, (x: unknown) => x);
    t.equal((e as { code?: string } | null)?.code, 'E_FEATURE_MISSING');
    const blk = await BlkDriver.open(dev.transport, { layout: 'split' });
    await blk.write(0, pattern(1, 4096));
    t.same(await blk.read(0, 8), pattern(1, 4096), 'the split ring on the same transport works');
    await blk.close();
  });
}
