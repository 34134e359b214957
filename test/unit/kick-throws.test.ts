// A notification the transport cannot send (vhost-vdpa's kick eventfd closed under a live driver:
// EBADF, found in the vdpa profile by a fresh attempt to break it) used to come out of submit()
// while the chain stayed in the ring, and close() then rejected the abandoned promises with nobody
// listening — an unhandled rejection per request, which ends a Node 20 process. Now the queue
// halts, the device is failed and reset, and every request settles once with the error.
import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { SysError } from '../../lib/sys/errno.js';

t.test('a throwing kick: every write settles once, close() leaves no unhandled rejection', async (t) => {
  let unhandled = 0;
  const count = (): void => { unhandled++; };
  process.on('unhandledRejection', count);
  t.teardown(() => { process.off('unhandledRejection', count); });
  const tr = (await openTransport('sim:blk')).transport;
  const orig = tr.notifier.bind(tr);
  let broken = false;
  tr.notifier = (q: number) => {
    const n = orig(q);
    return () => {
      if (broken) throw new SysError('write', 9 /* EBADF */, 'eventfd 42');
      n();
    };
  };
  const blk = await BlkDriver.open(tr, { maxTransfer: 16 * 1024 });
  broken = true;
  const data = new Uint8Array(512).fill(1);
  const codes = await Promise.all(Array.from({ length: 16 }, (_, i) => blk.write(100 + i, data).then(() => 'ok', (e: { code?: string }) => e.code ?? 'untyped')));
  t.same([...new Set(codes)].length, 1, `writes settled (${[...new Set(codes)].join(', ')})`);
  t.equal(blk.requests.vq.inFlight, 0, 'a write reported failed is not still in flight in the ring');
  await blk.close();
  await new Promise((r) => setTimeout(r, 200));
  t.equal(unhandled, 0, 'close() rejects nothing nobody listens to');
});
