// Reads entropy from a virtio-rng device with the rng driver (drivers/rng/, virtio 1.2 §5.4),
// using only uvirtio's public API. The driver and its reference-device model
// (lib/sim/models/rng.ts) are the worked example of README "Write your own driver".
//
//   node dist/examples/rng-driver.js [ADDRESS] [BYTES]     default sim:rng, 64 bytes
//   node dist/examples/rng-driver.js vfio:0000:00:05.0     QEMU's virtio-rng-pci, bound to vfio-pci

import { pathToFileURL } from 'node:url';
import { RngDriver, isUvirtioError, openTransport } from '../index.js';

async function main(): Promise<void> {
  const address = process.argv[2] ?? 'sim:rng';
  const bytes = Number(process.argv[3] ?? 64);
  const opened = await openTransport(address);
  const rng = await RngDriver.open(opened.transport);
  try {
    const data = await rng.read(bytes);
    const distinct = new Set(data).size;
    console.log(JSON.stringify({ ok: true, device: address, bytes: data.length, distinct, hex: Buffer.from(data.subarray(0, 32)).toString('hex') }));
  } finally {
    await rng.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    console.error(isUvirtioError(e) ? `rng-driver: ${e.toLine()}` : e);
    process.exit(1);
  });
}
