// `uvirtio check` writes only --scratch-sector: without it nothing at all (not even the write a
// read-only device must refuse, virtio 1.2 §5.2.6.2), a sector past the capacity is n/a (the
// driver may not ask, §5.2.6.1), and on a read-only device it writes back only bytes it read whole
// with status OK — a failed read's buffer written to a device that takes the write would destroy data.

import t from 'tap';
import { checkSim } from '../support/check-run.js';

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
