// The console tests' set-up: a reference console and a ConsoleDriver on it, a bounded wait, and a
// reader that takes n bytes from a port without destroying it.

import { createSimDevice, type SimConsoleOptions } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { ConsoleDriver, type ConsoleOpenOptions, type ConsolePort } from '../../drivers/console/index.js';

export async function bringUp(t: { teardown(fn: () => unknown): void }, sim: Omit<SimConsoleOptions, 'type'> = {}, driver: ConsoleOpenOptions = {}) {
  const dev = createSimDevice({ type: 'console', ...sim });
  const con = await ConsoleDriver.open(new VirtioPciTransport(dev.fn), driver);
  t.teardown(() => con.close());
  return { sim: dev, con };
}

export async function until(cond: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end;) await new Promise((r) => setTimeout(r, 1));
}

/** Reads `n` bytes from a port, then pauses it (a `for await` that breaks would destroy the port). */
export function readN(port: ConsolePort, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    const onData = (c: Buffer): void => {
      parts.push(c);
      got += c.length;
      if (got < n) return;
      port.off('data', onData);
      port.pause();
      resolve(Buffer.concat(parts));
    };
    port.on('data', onData);
  });
}

export const pattern = (n: number, seed = 0): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));
