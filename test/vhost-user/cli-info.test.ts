// `uvirtio info` on a vhost-user back-end names the mechanisms a driver really gets there — those
// of VirtioDevice.mechanisms() after negotiation, `backend` included (info once re-derived them from
// the feature bits by hand and forgot it).
import t from 'tap';
import { openTransport } from '../../lib/open.js';
import { VirtioDevice } from '../../lib/virtio/device.js';
import { uvSync } from '../support/cli.js';
import { Daemon, makeImage } from './daemon.js';
import { tempDir } from '../support/tmp.js';

const img = makeImage(16);
const daemon = await Daemon.start(img, 'info');
t.teardown(async () => {
  await daemon.kill('SIGKILL');
  img.remove();
});

t.test('info --json agrees with VirtioDevice.mechanisms()', async (t) => {
  const device = await VirtioDevice.open((await openTransport(daemon.address)).transport);
  const expected = device.mechanisms();
  await device.close();
  t.ok(expected.includes('backend'), `the SDK offers backend there (${expected.join(', ')})`);
  const r = uvSync({ UVIRTIO_RUNTIME_DIR: tempDir('uvirtio-vu-info-') }, process.cwd(), ['info', daemon.address, '--json']);
  t.equal(r.status, 0, r.stderr);
  t.same(r.json().mechanisms, expected, 'info says the same, in the same order');
  t.match(r.json(), { type: 'blk', queues: [{ index: 0 }] });
});
