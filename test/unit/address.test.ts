import t from 'tap';
import { formatAddress, parseAddress } from '../../lib/address.js';
import { UvirtioError } from '../../lib/errors.js';
import { SIM_MODELS } from '../../lib/sim/models/index.js';

t.test('parses each scheme into scheme, target and options', async (t) => {
  t.same(parseAddress('vfio:0000:00:02.0'), { scheme: 'vfio', target: '0000:00:02.0', options: {} });
  t.same(parseAddress('00:1F.7'), { scheme: 'vfio', target: '0000:00:1f.7', options: {} }, 'a bare BDF means vfio, normalised');
  t.same(parseAddress('vhost-user:/run/vhost.sock'), { scheme: 'vhost-user', target: '/run/vhost.sock', options: {} });
  t.same(parseAddress('vhost-user:/run/vhost.sock?type=net&timeout=200'),
    { scheme: 'vhost-user', target: '/run/vhost.sock', options: { type: 'net', timeout: '200' } }, 'vhost-user options parsed by the same parser');
  t.same(parseAddress('sim:blk?layout=packed&queues=4'), { scheme: 'sim', target: 'blk', options: { layout: 'packed', queues: '4' } });
  t.same(parseAddress('sim:net?mac=52%3A54%3A00%3A00%3A00%3A01').options, { mac: '52:54:00:00:00:01' }, 'options are percent-decoded');
  t.equal(formatAddress(parseAddress('sim:net')), 'sim:net');
  t.equal(formatAddress(parseAddress('sim:blk?mode=hold')), 'sim:blk?mode=hold');
  t.equal(formatAddress(parseAddress('00:02.0')), 'vfio:0000:00:02.0');
  t.equal(formatAddress(parseAddress('vhost-user:./a.sock?type=blk')), 'vhost-user:./a.sock?type=blk');
});

t.test('the sim: device types are the registered models', async (t) => {
  for (const name of Object.keys(SIM_MODELS)) t.equal(parseAddress(`sim:${name}`).target, name);
  t.throws(() => parseAddress('sim:toString'), { code: 'E_BAD_ADDRESS' }, 'not an inherited property name');
  try {
    parseAddress('sim:gpu');
  } catch (e) {
    t.match((e as Error).message, new RegExp(Object.keys(SIM_MODELS).join(', ')), 'the message lists the registered types');
  }
});

t.test('malformed addresses get E_BAD_ADDRESS with a hint', async (t) => {
  for (const bad of ['', 'vfio:00:02', 'vfio:0000:00:20.0', '0000:00:02.8', 'sim:gpu', 'sim:blk?layout', 'vhost-user:rel.sock', 'pci:00:02.0',
    'sim:blk?=1', 'sim:blk?a=', 'sim:blk?a=%E0%A4%A', 'vhost-user:']) {
    try {
      parseAddress(bad);
      t.fail(`"${bad}" should not parse`);
    } catch (e) {
      t.ok(e instanceof UvirtioError && e.code === 'E_BAD_ADDRESS' && !!e.hint, `"${bad}" → E_BAD_ADDRESS`);
    }
  }
});
