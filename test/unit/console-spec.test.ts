// virtio-console's numbers (virtio 1.2 §5.3): feature names as `uvirtio info` prints them, the
// configuration layout and the queue numbering a driver and the reference device both rely on.

import t from 'tap';
import {
  ConsoleConfig, ConsoleControlMsg, ConsoleEvent, ConsoleFeature, DeviceType, Feature, bit, consoleQueueCount, consoleReceiveq,
  consoleTransmitq, deviceTypeName, featureNames,
} from '../../lib/spec/index.js';

t.test('feature names: SIZE|MULTIPORT|EMERG_WRITE for a console, bitN for another type', async (t) => {
  const offer = bit(ConsoleFeature.SIZE) | bit(ConsoleFeature.MULTIPORT) | bit(ConsoleFeature.EMERG_WRITE) | bit(Feature.VERSION_1);
  t.equal(featureNames(offer, DeviceType.CONSOLE), 'SIZE|MULTIPORT|EMERG_WRITE|VERSION_1');
  t.equal(featureNames(bit(1) | bit(2), DeviceType.CONSOLE), 'MULTIPORT|EMERG_WRITE', 'QEMU virtio-serial-pci offers bits 1 and 2');
  t.equal(featureNames(bit(1) | bit(2), DeviceType.RNG), 'bit1|bit2');
  t.equal(featureNames(bit(3), DeviceType.CONSOLE), 'bit3', 'an unknown console bit stays numbered');
  t.equal(deviceTypeName(DeviceType.CONSOLE), 'console');
});

t.test('struct virtio_console_config and virtio_console_control offsets (§5.3.4, §5.3.6.2)', async (t) => {
  t.same([ConsoleConfig.COLS, ConsoleConfig.ROWS, ConsoleConfig.MAX_NR_PORTS, ConsoleConfig.EMERG_WR, ConsoleConfig.LEN], [0, 2, 4, 8, 12]);
  t.same([ConsoleControlMsg.ID, ConsoleControlMsg.EVENT, ConsoleControlMsg.VALUE, ConsoleControlMsg.LEN], [0, 4, 6, 8]);
  t.same(Object.values(ConsoleEvent), [0, 1, 2, 3, 4, 5, 6, 7]);
});

t.test('queues: port 0 at 0/1, the control pair at 2/3, port n at 2n+2 / 2n+3 (§5.3.2)', async (t) => {
  t.same([0, 1, 2, 5].map((p) => [consoleReceiveq(p), consoleTransmitq(p)]), [[0, 1], [4, 5], [6, 7], [12, 13]]);
  t.equal(consoleQueueCount(false, 31), 2, 'without MULTIPORT: port 0 only');
  t.equal(consoleQueueCount(true, 31), 64, 'QEMU: 31 ports, 64 queues');
});
