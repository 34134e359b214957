import t from 'tap';
import { Feature, NetFeature, bit, featureNames, hasFeature, packPackedState, unpackPackedState, DeviceType } from '../../lib/spec/index.js';

t.test('featureNames names transport bits and device bits', async (t) => {
  const mask = bit(Feature.VERSION_1) | bit(Feature.RING_PACKED) | bit(Feature.RING_STATE) | bit(NetFeature.MAC) | bit(50);
  t.equal(featureNames(mask, DeviceType.NET), 'MAC|VERSION_1|RING_PACKED|RING_STATE|bit50');
  t.equal(featureNames(mask), 'bit5|VERSION_1|RING_PACKED|RING_STATE|bit50');
  t.equal(featureNames(0n), '(none)');
  t.ok(hasFeature(mask, Feature.VERSION_1));
  t.notOk(hasFeature(mask, Feature.EVENT_IDX));
});

t.test('packed state encoding keeps 15 index bits and the wrap bit', async (t) => {
  t.equal(packPackedState(0x7fff, true), 0xffff);
  t.equal(packPackedState(5, false), 5);
  t.same(unpackPackedState(0x8003), { index: 3, wrap: true });
});
