// Your own driver (README "Using it as a library") stops its device with QueueSet.stop() and then
// calls resume() on the RequestQueue — a public method ("Lets waiting requests in again") one call
// away from QueueSet.resume(), the device's. Nothing refuses it: the queue admits the requests
// waiting behind the stop into the ring of a stopped device and notifies it. With the suspend
// mechanism the driver side then breaks a device rule itself (the strict device records
// notify-while-suspended: a driver MUST NOT notify a suspended device), the state no longer
// matches a snapshot taken at the stop, reinit(snapshot) is refused E_SNAPSHOT_INCONSISTENT and the
// requests are left pending with the device stopped (a quiesce stop lets them run on the live
// device the same way). What should happen: while the QueueSet holds the queue paused for a stop,
// RequestQueue.resume() is refused (E_BAD_STATE, naming QueueSet.resume()/reinit()) or does
// nothing; the requests wait, the snapshot taken at the stop reinitialises the device, and every
// request completes exactly once.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { QueueSet } from '../../lib/virtio/queue-set.js';
import { codeOf, settledCode } from '../support/codes.js';

for (const layout of ['split', 'packed'] as const) {
  for (const mechanism of ['suspend', 'quiesce'] as const) {
    t.test(`${layout}, ${mechanism}: RequestQueue.resume() during a stop lets nothing into the stopped device`, async (t) => {
      const opened = await openTransport(`sim:blk?layout=${layout}&mode=hold&latency=1&state=all`);
      const sim = opened.sim!;
      const dev = await VirtioDevice.open(opened.transport, { features: { layout } });
      const queues = new QueueSet(dev);
      t.teardown(() => queues.close());
      const rq = queues.add<number>(0, { size: 16 });
      await dev.driverOk();
      const done = new Map<number, number>();
      const read = (i: number): Promise<string> => {
        const b = dev.dma.alloc(1024);
        new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, 0 /* IN */, true);
        return settledCode(rq.submit([{ addr: b.iova, len: 16 }], [{ addr: b.iova + 16n, len: 512 }, { addr: b.iova + 528n, len: 1 }], i)
          .then((c) => { done.set(c.token, (done.get(c.token) ?? 0) + 1); }), 2000);
      };
      const pending: Promise<string>[] = [];
      for (let i = 0; i < 40; i++) pending.push(read(i));
      await new Promise((r) => setTimeout(r, 2));
      t.equal(await queues.stop({ mechanism }), mechanism);
      const snapshot = dev.snapshot();
      const resumed = codeOf(() => rq.resume()); // the queue's resume, by mistake
      t.ok(resumed === 'no error' || resumed === 'E_BAD_STATE', `rq.resume() does nothing or is refused (got ${resumed})`);
      for (let i = 40; i < 60; i++) pending.push(read(i));
      await new Promise((r) => setTimeout(r, 20));
      t.same(sim.violations.map((v) => v.id), [], 'the driver broke no device rule (no notify of a stopped device)');
      t.equal(await settledCode(queues.reinit(snapshot), 5000), 'ok', 'the snapshot taken at the stop reinitialises the device');
      const codes = await Promise.all(pending);
      t.same([...new Set(codes)], ['ok'], 'every request completes');
      t.equal(done.size, 60, 'each of the 60 requests completed');
      t.same([...done.values()].filter((n) => n > 1), [], 'none twice');
    });
  }
}
