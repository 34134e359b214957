// openTransport (lib/open.ts) and its openers: each transport reads its own options with the one
// option parser and decides itself what it can share memory with; the reference device takes the
// common sim: options plus each device type's own.

import t from 'tap';
import { openTransport, type OpenedTransport } from '../../lib/open.js';
import { UvirtioError } from '../../lib/errors.js';

async function refusal(address: string, shareWith?: OpenedTransport): Promise<UvirtioError> {
  try {
    const opened = await openTransport(address, shareWith ? { shareWith } : {});
    opened.transport.close();
  } catch (e) {
    if (e instanceof UvirtioError) return e;
    throw e;
  }
  throw new Error(`${address} opened`);
}

t.test('each sim: device type takes its own options, and only its own', async (t) => {
  const rng = await openTransport('sim:rng?seed=5');
  t.equal(rng.sim?.type, 'rng');
  rng.transport.close();
  const net = await openTransport('sim:net?mac=52:54:00:00:00:09&pairs=2');
  t.same(net.sim?.type === 'net' ? [...net.sim.mac] : [], [0x52, 0x54, 0, 0, 0, 9]);
  net.transport.close();
  for (const [address, message] of [
    ['sim:rng?queues=2', /unknown option "queues"/],
    ['sim:blk?seed=1', /unknown option "seed"/],
    ['sim:net?ro=1', /unknown option "ro"/],
    ['sim:net?mac=52:54:00', /mac=52:54:00 must be a MAC address/],
    ['sim:blk?queuesize=48', /queuesize=48 must be a power of two from 2 to 32768/],
    ['sim:blk?mode=later', /mode=later must be one of drain, hold/],
    ['sim:blk?fault=stop-stuck,nonsense', /fault=stop-stuck,nonsense/],
    ['sim:blk?blksize=1000', /blksize=1000 must be a power of two/],
  ] as const) {
    const e = await refusal(address);
    t.equal(e.code, 'E_BAD_ADDRESS', address);
    t.match(e.message, message, address);
    t.match(e.hint, /layout.*mode.*fault/, `${address}: the hint names the options it takes`);
  }
});

t.test('common sim: options: layout, state, faults', async (t) => {
  const d = await openTransport('sim:blk?layout=split&state=none&fault=stop-stuck,config-churn');
  t.equal(d.layout, 'split');
  t.equal(d.address, 'sim:blk?layout=split&state=none&fault=stop-stuck%2Cconfig-churn', 'the address, normalised');
  t.notOk(d.transport.deviceFeatures() & (1n << 34n), 'RING_PACKED not offered');
  d.transport.close();
});

t.test('shareWith: a sim: target takes the source’s memory and disk; other kinds are refused by each opener', async (t) => {
  const source = await openTransport('sim:blk?capacity=16');
  t.teardown(() => source.transport.close());
  const target = await openTransport('sim:blk?capacity=16', { shareWith: source });
  t.equal(target.sim?.dma, source.sim?.dma, 'the same memory');
  t.equal(target.sim?.type === 'blk' && source.sim?.type === 'blk' && target.sim.disk === source.sim.disk, true, 'the same disk');
  target.transport.close();
  const notSim: OpenedTransport = { address: 'vhost-user:/run/x.sock', transport: source.transport };
  t.match(await refusal('sim:blk', notSim), { code: 'E_BAD_ADDRESS', message: /only take over from another reference device/ });
  // vfio: and vhost-user: refuse before they touch the system (no device, no socket needed).
  t.match(await refusal('vfio:0000:00:02.0', source), { code: 'E_BAD_ADDRESS', message: /another VFIO function/ });
  t.match(await refusal('vhost-user:/nonexistent/x.sock', source), { code: 'E_BAD_ADDRESS', message: /another vhost-user device/ });
});

t.test('vfio: takes no options, vhost-user: its own: checked before anything is opened', async (t) => {
  t.match(await refusal('vfio:0000:00:02.0?queues=1'), { code: 'E_BAD_ADDRESS', message: /unknown option "queues" \(it takes no options\)/ });
  t.match(await refusal('vhost-user:/nonexistent/x.sock?type=gpu'), { code: 'E_BAD_ADDRESS', message: /type=gpu must be one of blk, net/ });
  t.match(await refusal('vhost-user:/nonexistent/x.sock?timeout=0'), { code: 'E_BAD_ADDRESS', message: /timeout=0 must be an integer from 1 to 600000/ });
  t.match(await refusal('vhost-user:/nonexistent/x.sock?layout=split'), { code: 'E_BAD_ADDRESS', message: /unknown option "layout"/ });
});
