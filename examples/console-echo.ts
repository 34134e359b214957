// Echoes what arrives on a virtio-console port (virtio 1.2 §5.3) back to the sender, with the
// console driver (drivers/console/) on uvirtio's public API. The port is a Node Duplex stream:
// writing back respects its back-pressure (write() false → wait for 'drain').
//
//   node dist/examples/console-echo.js [ADDRESS] [PORT] [BYTES]
//     default sim:console, port 1, 4096 bytes. The reference console's ports are loopbacks: the
//     greeting comes back and is echoed round until BYTES have been echoed.
//   node dist/examples/console-echo.js vfio:0000:00:06.0 org.uvirtio.echo 1000
//     QEMU's virtio-serial-pci (bound to vfio-pci) with a virtserialport named org.uvirtio.echo:
//     whatever the host writes into its chardev socket comes back, until 1000 bytes.
// PORT is a port number or the name the device gives it (PORT_NAME). Gives up after 60 s.

import { pathToFileURL } from 'node:url';
import { ConsoleDriver, isUvirtioError, openTransport, type ConsolePort } from '../index.js';

const GIVE_UP_MS = 60_000;

/** Writes every chunk of `port` back to it until `bytes` bytes were echoed; resolves with the count. */
function echo(port: ConsolePort, bytes: number): Promise<number> {
  let echoed = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`echoed ${echoed} of ${bytes} bytes in ${GIVE_UP_MS} ms`)), GIVE_UP_MS);
    port.on('error', reject);
    port.on('data', (chunk: Buffer) => {
      const part = chunk.subarray(0, bytes - echoed);
      echoed += part.length;
      if (!port.write(part)) {
        port.pause();
        port.once('drain', () => port.resume());
      }
      if (echoed < bytes) return;
      clearTimeout(timer);
      port.pause();
      port.end(() => resolve(echoed)); // 'finish': the device took every byte echoed
    });
  });
}

async function main(): Promise<void> {
  const address = process.argv[2] ?? 'sim:console';
  const which = process.argv[3] ?? '1';
  const bytes = Number(process.argv[4] ?? 4096);
  if (!Number.isInteger(bytes) || bytes < 1) throw new Error(`BYTES must be a positive integer, got ${process.argv[4]}`);
  const opened = await openTransport(address);
  const con = await ConsoleDriver.open(opened.transport);
  try {
    const port = await con.waitForPort(/^\d+$/.test(which) ? Number(which) : which, GIVE_UP_MS);
    const greeting = `uvirtio console-echo on port ${port.id}${port.name ? ` (${port.name})` : ''}: send bytes, they come back\n`;
    port.write(greeting);
    const echoed = await echo(port, bytes);
    console.log(JSON.stringify({ ok: true, device: address, port: port.id, name: port.name ?? null, multiport: con.multiport, echoed, badControl: con.badControl }));
  } finally {
    await con.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e: unknown) => {
    console.error(isUvirtioError(e) ? `console-echo: ${e.toLine()}` : `console-echo: ${(e as Error).message}`);
    process.exit(1);
  });
}
