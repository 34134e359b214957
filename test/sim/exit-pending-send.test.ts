// The watchdog keeps the process alive while a draining queue has requests pending. A NIC's
// watchdog that last looked with only receive buffers pending has unref'd its timer; a send
// submitted then must ref it again. With that send's interrupt lost (interrupt-silence on the
// transmit queue) the watchdog is all that settles it: the process must not exit first. (On VFIO
// the eventfd watch holds the process anyway; on the reference device nothing else does.) The
// child runs without tap's NODE_OPTIONS, whose hooks would keep it alive and hide the exit.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = resolve('dist');
const url = (p: string) => JSON.stringify(pathToFileURL(join(dist, p)).href);

function child(idleMs: number) {
  const body = `
    const { createSimDevice } = await import(${url('lib/sim/index.js')});
    const { VirtioPciTransport } = await import(${url('lib/transport/pci/transport.js')});
    const { NetDriver } = await import(${url('drivers/net/index.js')});
    const dev = createSimDevice({ type: 'net', mac: '02:00:00:00:00:0a' });
    const net = await NetDriver.open(new VirtioPciTransport(dev.fn), { interrupts: 'msix', requestTimeoutMs: 800 });
    // Let the watchdog look while only receive buffers are pending: it unrefs its timer.
    await new Promise((r) => setTimeout(r, ${idleMs}));
    dev.injectFault({ kind: 'interrupt-silence', queue: 1 });
    const frame = new Uint8Array(60); frame.fill(0xff, 0, 6);
    await net.send(frame);
    console.log('sent; missed ' + net.missedInterrupts);
    await net.close();
  `;
  // Without tap's NODE_OPTIONS: its hooks in the child hold the event loop and hide the exit.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return spawnSync(process.execPath, ['--input-type=module', '-e', body], { encoding: 'utf8', timeout: 20_000, env });
}

for (const idleMs of [0, 350]) {
  t.test(`send with a lost interrupt after ${idleMs} ms idle: the watchdog settles it before the process exits`, async (t) => {
    const r = child(idleMs);
    t.equal(r.signal, null, 'the child ended by itself');
    t.equal(r.status, 0, `exit status ${r.stderr}`);
    t.match(r.stdout, /sent; missed 1/, `the send settled (taken by the watchdog, counted once); child stdout: ${JSON.stringify(r.stdout)}`);
  });
}
