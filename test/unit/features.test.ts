import t from 'tap';
import { BlkFeature, DeviceType, Feature, bit, hasFeature } from '../../lib/spec/index.js';
import { negotiateFeatures } from '../../lib/virtio/features.js';
import { UvirtioError } from '../../lib/errors.js';
import { codeOf } from '../support/codes.js';

const modern = bit(Feature.VERSION_1);
const offerAll = modern | bit(Feature.RING_PACKED) | bit(Feature.INDIRECT_DESC) | bit(Feature.EVENT_IDX) |
  bit(Feature.ACCESS_PLATFORM) | bit(Feature.IN_ORDER) | bit(Feature.NOTIFICATION_DATA) | bit(Feature.RING_RESET) |
  bit(Feature.RING_STATE) | bit(BlkFeature.FLUSH) | bit(BlkFeature.RO);


t.test('accepts only bits the SDK implements, and the driver\'s offered device bits', async (t) => {
  const { features, layout } = negotiateFeatures(offerAll, { optional: [BlkFeature.FLUSH, BlkFeature.MQ] });
  t.equal(layout, 'packed', 'auto takes packed when offered');
  for (const b of [Feature.VERSION_1, Feature.RING_PACKED, Feature.INDIRECT_DESC, Feature.EVENT_IDX, Feature.ACCESS_PLATFORM, BlkFeature.FLUSH]) {
    t.ok(hasFeature(features, b), `accepts ${b}`);
  }
  for (const b of [Feature.IN_ORDER, Feature.NOTIFICATION_DATA, Feature.RING_RESET, Feature.RING_STATE, BlkFeature.RO, BlkFeature.MQ]) {
    t.notOk(hasFeature(features, b), `never accepts ${b} unasked or unimplemented`);
  }
  t.equal(features & ~offerAll, 0n, 'never accepts a bit the device did not offer');
});

t.test('layout, indirect and event idx follow the policy', async (t) => {
  t.equal(negotiateFeatures(offerAll, { layout: 'split' }).layout, 'split');
  t.equal(negotiateFeatures(modern, {}).layout, 'split', 'auto falls back to split');
  t.equal(codeOf(() => negotiateFeatures(modern, { layout: 'packed' })), 'E_FEATURE_MISSING');
  const f = negotiateFeatures(offerAll, { indirect: false, eventIdx: false }).features;
  t.notOk(hasFeature(f, Feature.INDIRECT_DESC));
  t.notOk(hasFeature(f, Feature.EVENT_IDX));
  t.ok(hasFeature(negotiateFeatures(offerAll, { transportExtras: [Feature.RING_STATE] }).features, Feature.RING_STATE));
});

t.test('a missing required feature is a typed error naming the bit', async (t) => {
  try {
    negotiateFeatures(modern | bit(BlkFeature.FLUSH), { required: [BlkFeature.FLUSH, BlkFeature.WRITE_ZEROES] }, DeviceType.BLK, 'sim:blk');
    t.fail('should have thrown');
  } catch (e) {
    t.ok(e instanceof UvirtioError);
    const err = e as UvirtioError;
    t.equal(err.code, 'E_FEATURE_MISSING');
    t.match(err.message, /WRITE_ZEROES/);
    t.notMatch(err.message, /FLUSH/, 'names only what is missing');
    t.match(err.hint ?? '', /FLUSH/, 'the hint shows what is offered');
  }
});

t.test('legacy-only devices and bad policies are refused', async (t) => {
  t.equal(codeOf(() => negotiateFeatures(bit(BlkFeature.FLUSH), {})), 'E_FEATURE_MISSING');
  t.equal(codeOf(() => negotiateFeatures(offerAll, { required: [Feature.IN_ORDER] })), 'E_INVALID_ARGUMENT', 'transport bits are the SDK\'s');
  t.equal(codeOf(() => negotiateFeatures(offerAll, { optional: [-1] })), 'E_INVALID_ARGUMENT');
  t.equal(codeOf(() => negotiateFeatures(offerAll, { transportExtras: [Feature.IN_ORDER] })), 'E_INVALID_ARGUMENT');
});
