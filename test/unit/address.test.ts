import t from 'tap';
import { formatAddress, parseAddress } from '../../lib/address.js';
import { UvirtioError } from '../../lib/errors.js';

t.test('parses each scheme', async (t) => {
  t.same(parseAddress('vfio:0000:00:02.0'), { kind: 'vfio', bdf: '0000:00:02.0' });
  t.same(parseAddress('00:1F.7'), { kind: 'vfio', bdf: '0000:00:1f.7' }, 'a bare BDF means vfio, normalised');
  t.same(parseAddress('vhost-user:/run/vhost.sock'), { kind: 'vhost-user', path: '/run/vhost.sock' });
  t.same(parseAddress('sim:blk?layout=packed&queues=4'), { kind: 'sim', type: 'blk', options: { layout: 'packed', queues: '4' } });
  t.equal(formatAddress(parseAddress('sim:net')), 'sim:net');
  t.equal(formatAddress(parseAddress('sim:blk?mode=hold')), 'sim:blk?mode=hold');
});

t.test('malformed addresses get E_BAD_ADDRESS with a hint', async (t) => {
  for (const bad of ['', 'vfio:00:02', 'vfio:0000:00:20.0', '0000:00:02.8', 'sim:gpu', 'sim:blk?layout', 'vhost-user:rel.sock', 'pci:00:02.0']) {
    try {
      parseAddress(bad);
      t.fail(`"${bad}" should not parse`);
    } catch (e) {
      t.ok(e instanceof UvirtioError && e.code === 'E_BAD_ADDRESS' && !!e.hint, `"${bad}" → E_BAD_ADDRESS`);
    }
  }
});
