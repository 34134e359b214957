// MemfdArena (vhost-user, and vhost-vdpa's VdpaArena) free() and lookup(): free takes only the
// arena's own regions (the object alloc() returned, or an exact copy), refuses anything else with
// E_INVALID_ARGUMENT and leaves its accounting alone; lookup finds a range inside any live region.
import t from 'tap';
import { MemfdArena } from '../../lib/transport/vhost-user/arena.js';
import { codeOf } from '../support/codes.js';

t.test('free(): own regions only; lookup(): inside a live region', async (t) => {
  const a = new MemfdArena(1 << 20);
  t.teardown(() => a.close());
  const [r1, r2, r3] = [a.alloc(4096), a.alloc(100), a.alloc(8192)];
  t.equal(a.lookup(r3.iova + 100n, 10), r3, 'a range in the middle of a region');
  t.equal(a.lookup(r2.iova + 50n, 50), r2, 'a range ending at the region\'s end');
  t.equal(a.lookup(r2.iova + 50n, 51), undefined, 'a range running past it');
  t.equal(a.lookup(r2.iova, 1.5), undefined, 'a fractional length');
  for (const bad of [null, undefined, 42, r1.iova]) t.equal(codeOf(() => a.free(bad as never)), 'E_INVALID_ARGUMENT', `free(${String(bad)})`);
  t.equal(codeOf(() => a.free({ iova: r1.iova, size: 1 << 19, bytes: r1.bytes })), 'E_INVALID_ARGUMENT', 'a look-alike of another size');
  t.equal(a.lookup(r1.iova, 4096), r1, 'the look-alike freed nothing');
  a.free({ ...r2 });
  t.equal(a.lookup(r2.iova, 1), undefined, 'an exact copy frees the region');
  t.equal(codeOf(() => a.free(r2)), 'E_INVALID_ARGUMENT', 'a double free');
  a.free(r1);
  t.equal(a.lookup(r3.iova, 8192), r3, 'the other regions stay');
  a.free(r3);
  t.equal(a.alloc(1 << 20).size, 1 << 20, 'all the memory came back');
});
