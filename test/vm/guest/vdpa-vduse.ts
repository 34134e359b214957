// Runs inside the test VM's vdpa profile booted with uvirtio.vduse=1: vduse0, a VDUSE virtio-blk
// device (scripts/vm/vduse-blk.c) on a parent without suspend — vhost-vdpa offers neither
// VHOST_BACKEND_F_SUSPEND nor _RESUME on it. It serves no I/O, so nothing is submitted: the driver
// opens it (features, the ring through the IOTLB, DRIVER_OK), a stop is refused with
// E_STATE_UNSUPPORTED and a hint naming the feature, and `--mechanism quiesce` still stops it.
// The host side is test/vm/vdpa-vduse.test.ts.
import fs from 'node:fs';
import { BlkDriver } from '../../../drivers/blk/index.js';
import { openTransport } from '../../../lib/open.js';
import type { VhostVdpaTransport } from '../../../lib/transport/vhost-vdpa/transport.js';
import { expectErrorAsync, report, step } from './report.js';

interface DeviceEntry { name: string; dev: string }
const devices = JSON.parse(fs.readFileSync('/run/vdpa-devices.json', 'utf8')) as DeviceEntry[];
const VDUSE = `vhost-vdpa:${devices.find((d) => d.name === 'vduse0')!.dev}`;

async function main(): Promise<void> {
  const blk = await BlkDriver.open((await openTransport(VDUSE)).transport);
  const t = blk.device.transport as VhostVdpaTransport;
  report('open', { address: VDUSE, deviceType: t.deviceType, offered: t.offeredBackendFeatures, negotiated: t.backendFeatures,
    mechanisms: blk.device.mechanisms(), phase: blk.device.phase, capacity: blk.capacitySectors });
  await expectErrorAsync('stop-auto', () => blk.stop());
  await expectErrorAsync('stop-backend', () => blk.stop({ mechanism: 'backend' }));
  await step('stop-quiesce', async () => ({ mechanism: await blk.stop({ mechanism: 'quiesce' }), phase: blk.device.phase }));
  await blk.close();
  report('done', {});
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});
