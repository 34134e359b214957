// Runs inside the test VM: QEMU's virtio-serial-pci with a virtserialport (PORT_NAME) whose chardev
// is a UNIX socket on the host, driven by ConsoleDriver over vfio (test/vm/console.test.ts is the
// host side, holding the socket):
//   open     the features QEMU offers and the mechanisms it allows (quiesce only)
//   port     the port found by its name once the host side is open
//   to-host  TO_HOST_BYTES of a pattern written to the host (the host checks them)
//   echo     what the host sends is written back; at each quarter of the way (STOPS times), stop
//            (quiesce) → snapshot (through JSON) → reinit; until the host closes its side
//   With the argument `cycles`, the echo instead stops (quiesce) and resumes every CYCLE_MS while
//   the host trickles its bytes in (console.test.ts's second case): each stop meets a device with
//   receive buffers free and an idle moment on the host side.
// The device is found by its PCI ids (1af4:1043, virtio 1.2 §4.1.2), not by a fixed address.

import fs from 'node:fs';
import { ConsoleDriver, type ConsolePort } from '../../../drivers/console/index.js';
import { openTransport } from '../../../lib/open.js';
import { featureNames } from '../../../lib/spec/index.js';
import { parseSnapshot } from '../../../lib/virtio/snapshot/index.js';
import { CYCLE_MS, ECHO_BYTES, PORT_NAME, STOPS, TO_HOST_BYTES, pattern } from './console-pattern.js';
import { report, step } from './report.js';

const BOUND_MS = 120_000;

function findConsole(): string {
  const root = '/sys/bus/pci/devices';
  const bdf = fs.readdirSync(root).find((d) => fs.readFileSync(`${root}/${d}/vendor`, 'utf8').trim() === '0x1af4'
    && fs.readFileSync(`${root}/${d}/device`, 'utf8').trim() === '0x1043');
  if (!bdf) throw new Error('no virtio-console function (1af4:1043) in the guest');
  return `vfio:${bdf}`;
}

async function until(what: string, cond: () => boolean, ms = BOUND_MS): Promise<void> {
  for (const end = Date.now() + ms; !cond();) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Echoes until the host closes its side; at each k/(STOPS+1) of the way, stop → snapshot → reinit. */
async function echo(con: ConsoleDriver, port: ConsolePort): Promise<Record<string, unknown>> {
  let echoed = 0;
  const cycles: Promise<Record<string, unknown>>[] = [];
  let cycle: Promise<unknown> = Promise.resolve();
  let hostClosed = false;
  port.on('host-close', () => (hostClosed = true));
  port.on('data', (chunk: Buffer) => {
    echoed += chunk.length;
    port.write(chunk);
    if (cycles.length < STOPS && echoed >= (ECHO_BYTES * (cycles.length + 1)) / (STOPS + 1)) {
      const atStop = echoed;
      // One cycle after another: a stop asked for while the last reinit runs waits for it.
      const next = cycle.then(async () => {
        const mechanism = await con.stop({ mechanism: 'auto' });
        const snap = parseSnapshot(JSON.stringify(con.snapshot()));
        await con.reinit(snap);
        return { mechanism, snapshotMechanism: snap.mechanism, queues: snap.queues.length, atStop, state: con.device.phase };
      });
      cycle = next.catch(() => undefined);
      cycles.push(next);
    }
  });
  await until('the host closing its side', () => hostClosed);
  const done = await Promise.all(cycles);
  const info = { ...(done[0] ?? { mechanism: null }), stops: done.map((c) => c.atStop), states: done.map((c) => c.state) };
  await new Promise<void>((resolve) => port.end(resolve));
  return { ...info, echoed, bytesRead: port.bytesRead, bytesWritten: port.bytesWritten, hostOpenAtEnd: port.hostOpen };
}

/** Echoes until the host closes its side, stopping (quiesce) and resuming every CYCLE_MS meanwhile. */
async function echoWithCycles(con: ConsoleDriver, port: ConsolePort): Promise<Record<string, unknown>> {
  let echoed = 0;
  let hostClosed = false;
  port.on('host-close', () => (hostClosed = true));
  port.on('data', (chunk: Buffer) => {
    echoed += chunk.length;
    port.write(chunk);
  });
  let cycles = 0;
  let lastMechanism: string | null = null;
  while (!hostClosed) {
    await new Promise((r) => setTimeout(r, CYCLE_MS));
    if (hostClosed || echoed === 0) continue;
    lastMechanism = await con.stop({ mechanism: 'quiesce' });
    await con.resume();
    cycles++;
  }
  await new Promise<void>((resolve) => port.end(resolve));
  return { cycles, mechanism: lastMechanism, state: con.device.phase, echoed, bytesRead: port.bytesRead };
}

async function main(): Promise<void> {
  const cyclesMode = process.argv[2] === 'cycles';
  const address = findConsole();
  const con = await ConsoleDriver.open((await openTransport(address)).transport);
  report('open', {
    address, features: featureNames(con.device.features & 0xffffffn, 3), multiport: con.multiport, maxPorts: con.maxPorts,
    mechanisms: con.device.mechanisms(), interrupts: con.device.interruptMode, layout: con.device.layout,
  });
  let port: ConsolePort | undefined;
  await step('port', async () => {
    port = await con.waitForPort(PORT_NAME, BOUND_MS);
    await until('the host side opening', () => port!.hostOpen);
    return { id: port.id, name: port.name, console: port.console, hostOpen: port.hostOpen };
  });
  if (port) {
    const p = port;
    await step('to-host', async () => {
      await new Promise<void>((resolve, reject) => p.write(pattern(TO_HOST_BYTES, 1), (e) => (e ? reject(e) : resolve())));
      await until('the device taking the bytes', () => p.bytesWritten >= TO_HOST_BYTES);
      return { written: p.bytesWritten };
    });
    await step('echo', () => (cyclesMode ? echoWithCycles(con, p) : echo(con, p)));
  }
  report('done', { badControl: con.badControl, lastBadControl: con.lastBadControl?.code ?? null, orphanBytes: con.orphanBytes });
  await con.close();
}

main().catch((e: unknown) => {
  report('fatal', { error: String((e as Error)?.stack ?? e) });
  process.exitCode = 1;
});
