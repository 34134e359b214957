// `uvirtio check` writes only --scratch-sector: without it nothing at all (not even the write a
// read-only device must refuse, virtio 1.2 §5.2.6.2), a sector past the capacity is n/a (the
// driver may not ask, §5.2.6.1), and on a read-only device it writes back only bytes it read whole
// with status OK — a failed read's buffer written to a device that takes the write would destroy data.

import t from 'tap';
import { openTransport } from '../../lib/open.js';
import type { VirtioTransport } from '../../lib/transport/types.js';
import { BlkDriver } from '../../drivers/blk/index.js';
import { CHECKS } from '../../cli/check/all.js';
import { runChecks } from '../../cli/check/runner.js';
import { checkSim } from '../support/check-run.js';

/** `t` whose close() does nothing: a driver closed here leaves the transport to the suite. */
const lent = (t: VirtioTransport): VirtioTransport => new Proxy(t, { get: (o, p) => (p === 'close' ? () => undefined : Reflect.get(o, p, o) as unknown) });

const readOnly = async (scratch: number | null, injection?: Parameters<typeof checkSim>[1]): Promise<{ result: string; detail: string }> => {
  const r = await checkSim('sim:blk?ro=1', injection, scratch);
  return r.results.find((c) => c.id === 'blk.read-only')!;
};

t.test('blk.read-only without --scratch-sector writes nothing: n/a', async (t) => {
  t.match(await readOnly(null), { result: 'n/a', detail: /no --scratch-sector/ });
});

t.test('blk.read-only on --scratch-sector past the capacity: n/a, nothing asked of the device', async (t) => {
  t.match(await readOnly(2048), { result: 'n/a', detail: /not inside the 2048-sector device/ });
  t.match(await readOnly(2047), { result: 'pass', detail: /sector 2047 refused with IOERR/ });
});

t.test('blk.read-only whose read fails writes nothing back', async (t) => {
  for (const kind of ['bad-blk-status', 'used-len-short'] as const) {
    t.match(await readOnly(8, { fault: { kind }, at: 'blk.read-only' }), { result: 'fail', detail: /the read of sector 8 ended .*: nothing written/ }, kind);
  }
});

t.test('blk.read-after-write puts the scratch block back when the read-back fails', async (t) => {
  const dev = await openTransport('sim:blk');
  const sim = (dev as { sim?: { injectFault(f: { kind: string }): void } }).sim!;
  const tr = dev.transport;
  const sector = async (): Promise<Uint8Array> => {
    const drv = await BlkDriver.open(lent(tr));
    try {
      return await drv.read(8, 1);
    } finally {
      await drv.close();
    }
  };
  try {
    const before = await sector();
    // The third request (save, pattern, read-back) gets a bad status byte: the read-back fails.
    let kicks = 0;
    const notifier = tr.notifier.bind(tr);
    tr.notifier = (q: number) => {
      const n = notifier(q);
      return () => {
        if (++kicks === 3) sim.injectFault({ kind: 'bad-blk-status' });
        n();
      };
    };
    const r = await runChecks(dev, CHECKS, { timeoutMs: 2000, scratchSector: 8, only: ['blk.read-after-write'], hooks: { live: () => void (kicks = 0) } });
    tr.notifier = notifier;
    t.match(r.results[0], { id: 'blk.read-after-write', result: 'fail', detail: /E_DEVICE_BAD_REPLY/ });
    t.same(await sector(), before, 'sector 8 as it was');
  } finally {
    tr.close();
  }
});
