// Device status and reset (virtio 1.2 §2.1, §2.2.2, §2.4, §3.1.1): checks that drive the status
// register by hand, below VirtioDevice, so that they can do what a conforming driver never does
// (accept a feature that was not offered) and see what the device answers.

import { Feature, Status, bit, hasFeature } from '../../../lib/spec/index.js';
import type { VirtioTransport } from '../../../lib/transport/types.js';
import { fail, na, pass, warn, type Check } from '../types.js';

const hex = (v: number | bigint): string => `0x${v.toString(16)}`;

/** ACKNOWLEDGE, DRIVER, the features, FEATURES_OK (§3.1.1 steps 1–5), then device_status as read back. */
async function tryFeatures(t: VirtioTransport, features: bigint, timeoutMs: number): Promise<number> {
  await t.reset(timeoutMs);
  t.writeStatus(Status.ACKNOWLEDGE);
  t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
  t.writeDriverFeatures(features);
  t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  await t.flush?.(timeoutMs);
  return t.readStatus();
}

/** The lowest feature bit (0–63) the device does not offer and no spec version defines for every type: a bit to accept wrongly. */
function unofferedBit(offered: bigint): number | undefined {
  for (let n = 0; n < 64; n++) if (!hasFeature(offered, n)) return n;
  return undefined;
}

/** Device status and reset checks (virtio 1.2 §2.1, §2.2.2, §2.4), raw on the transport. */
export const STATUS_CHECKS: readonly Check[] = [
  {
    id: 'status.reset-reads-zero', section: '2.4.1, 4.1.4.3.1', level: 'MUST',
    clause: 'after 0 is written to device_status the device resets and device_status reads 0',
    does: 'sets ACKNOWLEDGE | DRIVER, writes 0 and waits (bounded) for device_status to read 0',
    async run(ctx) {
      // The runner left the device reset: no reset of our own first (a stuck one would hide here).
      ctx.t.writeStatus(Status.ACKNOWLEDGE);
      ctx.t.writeStatus(Status.ACKNOWLEDGE | Status.DRIVER);
      const t0 = performance.now();
      await ctx.t.reset(Math.min(1000, ctx.timeoutMs));
      return pass(`read 0 after ${(performance.now() - t0).toFixed(2)} ms`);
    },
  },
  {
    id: 'status.features-ok-unoffered', section: '2.2.2', level: 'MUST',
    clause: 'the device does not let FEATURES_OK stick when the driver accepted a feature it did not offer',
    does: 'accepts the offer plus the lowest bit not offered, sets FEATURES_OK and reads device_status',
    async run(ctx) {
      const n = unofferedBit(ctx.offered);
      if (n === undefined) return na('the device offers every bit 0–63');
      const status = await tryFeatures(ctx.t, ctx.offered | bit(n), ctx.timeoutMs);
      return status & Status.FEATURES_OK
        ? fail(`FEATURES_OK stuck (device_status ${hex(status)}) with bit ${n} accepted, which was not offered`)
        : pass(`FEATURES_OK refused with unoffered bit ${n} accepted`);
    },
  },
  {
    id: 'status.features-ok-subset', section: '2.2.2', level: 'SHOULD',
    clause: 'the device accepts any valid subset of its offer: FEATURES_OK sticks for VERSION_1 alone (with ACCESS_PLATFORM when offered, which a device may require, §6.1)',
    does: 'accepts only VIRTIO_F_VERSION_1 (and VIRTIO_F_ACCESS_PLATFORM when offered), sets FEATURES_OK and reads device_status',
    needs: { features: [Feature.VERSION_1] },
    async run(ctx) {
      const platform = hasFeature(ctx.offered, Feature.ACCESS_PLATFORM) ? bit(Feature.ACCESS_PLATFORM) : 0n;
      const what = platform ? 'VERSION_1 and ACCESS_PLATFORM alone' : 'VERSION_1 alone';
      const status = await tryFeatures(ctx.t, bit(Feature.VERSION_1) | platform, ctx.timeoutMs);
      return status & Status.FEATURES_OK
        ? pass(`FEATURES_OK sticks with ${what}`)
        : fail(`FEATURES_OK did not stick with ${what} (device_status ${hex(status)})`);
    },
  },
  {
    id: 'status.needs-reset', section: '2.1.2', level: 'MUST',
    clause: 'a device that sets DEVICE_NEEDS_RESET after DRIVER_OK sends a configuration change notification; a reset clears it',
    does: 'brings the device up with MSI-X, watches device_status and configuration interrupts for a moment; a device that sets NEEDS_RESET is a warning, one that does so silently a failure',
    async run(ctx) {
      const d = await ctx.open({ interrupts: 'msix' }).catch((e: { code?: string }) => {
        if (e.code === 'E_CAP_MISSING') return null;
        throw e;
      });
      if (!d) return na('no MSI-X vectors: a configuration interrupt cannot be seen');
      let configInterrupts = 0;
      d.onConfigChange(() => configInterrupts++);
      await d.driverOk();
      await ctx.live();
      const deadline = performance.now() + Math.min(50, ctx.timeoutMs / 4);
      while (performance.now() < deadline && !(ctx.t.readStatus() & Status.DEVICE_NEEDS_RESET)) await new Promise((r) => setTimeout(r, 2));
      if (!(ctx.t.readStatus() & Status.DEVICE_NEEDS_RESET)) return pass('NEEDS_RESET not set');
      await new Promise((r) => setTimeout(r, 10));
      if (configInterrupts === 0) return fail('DEVICE_NEEDS_RESET set after DRIVER_OK without a configuration change notification');
      await ctx.t.reset(ctx.timeoutMs);
      return warn('the device set DEVICE_NEEDS_RESET while a conforming driver used it (with the configuration interrupt; a reset cleared it)');
    },
  },
];
