// Device types (virtio 1.2 §5.1 net, §5.2 blk, §5.4 rng), each only on a device of that type,
// through the SDK's own drivers (drivers/), whose checks of replies (short used lengths, unknown
// status bytes: E_DEVICE_SHORT_USED_LEN, E_DEVICE_BAD_REPLY) are the checks' own. Writes touch
// only --scratch-sector, and put back what was there.

import { BLK_REQ_HEADER_LEN, BLK_SECTOR_SIZE, BlkConfig, BlkFeature, BlkReq, BlkStatus, DeviceType, NetConfig, NetFeature, NetStatus } from '../../../lib/spec/index.js';
import { DeviceConfig } from '../../../lib/virtio/config.js';
import { BlkDriver } from '../../../drivers/blk/index.js';
import { NetDriver } from '../../../drivers/net/index.js';
import { RngDriver } from '../../../drivers/rng/index.js';
import { oneRequest } from '../traffic.js';
import { fail, na, pass, warn, type Check, type CheckContext } from '../types.js';

const BLK = { types: [DeviceType.BLK] };

async function blk(ctx: CheckContext): Promise<BlkDriver> {
  // Its watchdog answers within the check's bound: a silent device is E_DEVICE_UNRESPONSIVE, not the check's timeout.
  const drv = await BlkDriver.open(ctx.t, { interrupts: 'auto', stateFeatures: false, queues: 1, requestTimeoutMs: Math.max(1, Math.floor(ctx.timeoutMs / 2)) });
  ctx.defer(() => drv.close());
  await ctx.live();
  return drv;
}

/** A raw blk request of `type` at `sector` with `data` out (or none) and a status byte; resolves with the status. */
async function rawBlk(ctx: CheckContext, type: number, sector: number, data?: Uint8Array): Promise<number> {
  const { buf } = await oneRequest(ctx, (b) => {
    const v = new DataView(b.bytes.buffer, b.bytes.byteOffset);
    v.setUint32(0, type, true);
    v.setBigUint64(8, BigInt(sector), true);
    if (data) b.bytes.set(data, 64);
    b.bytes[3000] = 0xaa;
    const hdr = { addr: b.iova, len: BLK_REQ_HEADER_LEN };
    const status = { addr: b.iova + 3000n, len: 1 };
    return data ? { readable: [hdr, { addr: b.iova + 64n, len: data.length }], writable: [status] } : { readable: [hdr], writable: [status] };
  });
  return buf.bytes[3000]!;
}

/** Device-type checks: blk (virtio 1.2 §5.2), net (§5.1), rng (§5.4), each n/a on other types. */
export const DEVICE_CHECKS: readonly Check[] = [
  {
    id: 'blk.read', section: '5.2.6', level: 'MUST', needs: BLK,
    clause: 'a read within capacity completes with status OK, the data and the status byte written (used len counts them)',
    does: 'reads the first and the last logical block through BlkDriver, which checks used len and status',
    async run(ctx) {
      const drv = await blk(ctx);
      const last = drv.capacitySectors - drv.limits.blockSize / BLK_SECTOR_SIZE;
      if (last < 0) return na('capacity 0');
      await drv.read(0, drv.limits.blockSize / BLK_SECTOR_SIZE);
      await drv.read(last, drv.limits.blockSize / BLK_SECTOR_SIZE);
      return pass(`capacity ${drv.capacitySectors} sectors; first and last block read`);
    },
  },
  {
    id: 'blk.read-after-write', section: '5.2.6', level: 'MUST', needs: BLK,
    clause: 'data written to a sector reads back the same',
    does: 'on --scratch-sector only: saves the block, writes a pattern, reads it back, writes the saved block back; n/a without --scratch-sector or on a read-only device',
    async run(ctx) {
      if (ctx.scratchSector === null) return na('no --scratch-sector given: no writes');
      if ((ctx.offered >> BigInt(BlkFeature.RO)) & 1n) return na('the device is read-only (VIRTIO_BLK_F_RO)');
      const drv = await blk(ctx);
      const sectors = drv.limits.blockSize / BLK_SECTOR_SIZE;
      const s = ctx.scratchSector;
      if (s % sectors || s + sectors > drv.capacitySectors) return na(`--scratch-sector ${s} is not a whole block inside the ${drv.capacitySectors}-sector device`);
      const saved = await drv.read(s, sectors);
      const pattern = saved.map((_, i) => (i * 7 + 0x5a) & 0xff);
      let back: Uint8Array;
      try {
        await drv.write(s, pattern);
        back = await drv.read(s, sectors);
      } catch (e) {
        await drv.write(s, saved).catch(() => undefined); // the block put back even when the device failed half-way
        throw e;
      }
      await drv.write(s, saved);
      const at = back.findIndex((b, i) => b !== pattern[i]);
      return at < 0 ? pass(`${pattern.length} bytes at sector ${s} read back; restored`) : fail(`byte ${at} at sector ${s} read back ${back[at]}, written ${pattern[at]}`);
    },
  },
  {
    id: 'blk.flush', section: '5.2.6', level: 'MUST', needs: { types: [DeviceType.BLK], features: [BlkFeature.FLUSH] },
    clause: 'with VIRTIO_BLK_F_FLUSH, a flush request completes with status OK',
    does: 'sends VIRTIO_BLK_T_FLUSH through BlkDriver',
    async run(ctx) {
      await (await blk(ctx)).flush();
      return pass('flush OK');
    },
  },
  {
    id: 'blk.get-id', section: '5.2.6', level: 'SHOULD', needs: BLK,
    clause: 'a GET_ID request is answered with the device\'s id string (up to 20 bytes)',
    does: 'sends VIRTIO_BLK_T_GET_ID through BlkDriver',
    async run(ctx) {
      const id = await (await blk(ctx)).getId();
      return pass(`id ${JSON.stringify(id)}`);
    },
  },
  {
    id: 'blk.unsupported-type', section: '5.2.6', level: 'SHOULD', needs: BLK,
    clause: 'a request of a type the device does not know completes with status UNSUPP',
    does: 'sends a request of type 0xff (none defined) with only a header and a status byte',
    async run(ctx) {
      const status = await rawBlk(ctx, 0xff, 0);
      return status === BlkStatus.UNSUPP ? pass('UNSUPP') : fail(`status ${status}, not UNSUPP (${BlkStatus.UNSUPP})`);
    },
  },
  {
    id: 'blk.read-only', section: '5.2.6.2', level: 'MUST', needs: { types: [DeviceType.BLK], features: [BlkFeature.RO] },
    clause: 'with VIRTIO_BLK_F_RO, a write completes with status IOERR and writes nothing',
    does: 'on --scratch-sector only: reads it, and only when that read completed whole with status OK writes the same bytes back raw (harmless whatever the device does) and expects IOERR; n/a without --scratch-sector',
    async run(ctx) {
      if (ctx.scratchSector === null) return na('no --scratch-sector given: no writes (not even one a read-only device must refuse)');
      const s = ctx.scratchSector;
      const capacity = new DeviceConfig(() => ctx.t).read64(BlkConfig.CAPACITY);
      if (BigInt(s) >= capacity) return na(`--scratch-sector ${s} is not inside the ${capacity}-sector device`);
      const { len, buf } = await oneRequest(ctx, (b) => {
        const v = new DataView(b.bytes.buffer, b.bytes.byteOffset);
        v.setUint32(0, BlkReq.IN, true);
        v.setBigUint64(8, BigInt(s), true);
        b.bytes[3000] = 0xaa;
        return { readable: [{ addr: b.iova, len: BLK_REQ_HEADER_LEN }], writable: [{ addr: b.iova + 64n, len: BLK_SECTOR_SIZE }, { addr: b.iova + 3000n, len: 1 }] };
      });
      // Writing back anything but what was read (a short or failed read leaves the buffer as it was) could destroy data on a device that takes the write.
      if (buf.bytes[3000] !== BlkStatus.OK || len !== BLK_SECTOR_SIZE + 1) {
        return fail(`the read of sector ${s} ended with status ${buf.bytes[3000]!} and used len ${len} (not OK and ${BLK_SECTOR_SIZE + 1}): nothing written`);
      }
      const saved = buf.bytes.slice(64, 64 + BLK_SECTOR_SIZE);
      await ctx.t.reset(ctx.timeoutMs);
      const status = await rawBlk(ctx, BlkReq.OUT, s, saved);
      return status === BlkStatus.IOERR ? pass(`a write to sector ${s} refused with IOERR`) : fail(`a write to a read-only device completed with status ${status}, not IOERR`);
    },
  },
  {
    id: 'net.mac', section: '5.1.4', level: 'SHOULD', needs: { types: [DeviceType.NET], features: [NetFeature.MAC] },
    clause: 'with VIRTIO_NET_F_MAC, mac holds a unicast, non-zero address',
    does: 'reads mac from the device configuration',
    async run(ctx) {
      const mac = Array.from({ length: 6 }, (_, i) => ctx.t.readConfig(NetConfig.MAC + i, 1));
      const text = mac.map((b) => b.toString(16).padStart(2, '0')).join(':');
      if (mac.every((b) => b === 0)) return fail('mac is 00:00:00:00:00:00');
      return mac[0]! & 1 ? fail(`mac ${text} is a multicast address`) : pass(`mac ${text}`);
    },
  },
  {
    id: 'net.link-status', section: '5.1.4', level: 'SHOULD', needs: { types: [DeviceType.NET], features: [NetFeature.STATUS] },
    clause: 'with VIRTIO_NET_F_STATUS, status uses only LINK_UP and ANNOUNCE',
    does: 'reads status from the device configuration',
    async run(ctx) {
      const status = ctx.t.readConfig(NetConfig.STATUS, 2);
      const other = status & ~(NetStatus.LINK_UP | NetStatus.ANNOUNCE);
      if (other) return fail(`status 0x${status.toString(16)} has undefined bits 0x${other.toString(16)}`);
      return status & NetStatus.LINK_UP ? pass('link up') : warn('link down: frames cannot be checked');
    },
  },
  {
    id: 'net.frames', section: '5.1.6', level: 'SHOULD', needs: { types: [DeviceType.NET] },
    clause: 'a transmitted frame is used (returned) by the device within the bound (it may hold it while its network is busy); received frames arrive in posted buffers with a valid header',
    does: 'sends 4 broadcast frames through NetDriver and counts frames received for a moment (a loopback or bridged device sends them back)',
    async run(ctx) {
      const drv = await NetDriver.open(ctx.t, { stateFeatures: false, requestTimeoutMs: Math.max(1, Math.floor(ctx.timeoutMs / 2)) });
      ctx.defer(() => drv.close());
      await ctx.live();
      let received = 0;
      drv.onFrame(() => received++);
      const frame = new Uint8Array(60).fill(0xff, 0, 6);
      for (let i = 0; i < 4; i++) await drv.send(frame);
      await new Promise((r) => setTimeout(r, 20));
      if (drv.malformedFrames) return fail(`${drv.malformedFrames} malformed frame(s): ${drv.lastMalformed?.message ?? ''}`);
      return pass(`4 frames sent, ${received} received`);
    },
  },
  {
    id: 'rng.entropy', section: '5.4.6', level: 'MUST', needs: { types: [DeviceType.RNG] },
    clause: 'the device fills the buffers it is given with random bytes (used len within them, not zero)',
    does: 'reads 256 bytes through RngDriver (which checks used lengths) and looks at them',
    async run(ctx) {
      const drv = await RngDriver.open(ctx.t);
      ctx.defer(() => drv.close());
      await ctx.live();
      const bytes = await drv.read(256);
      return bytes.every((b) => b === bytes[0]) ? fail(`256 bytes all 0x${bytes[0]!.toString(16)}`) : pass('256 bytes');
    },
  },
];
