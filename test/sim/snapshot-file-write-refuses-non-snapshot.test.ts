// writeSnapshotFile(path, snap) writes whatever `snap` is: given a prototype-less object or {} it
// replaces a good snapshot file with "{}" (which readSnapshotFile then refuses), so a careless
// caller loses the saved state. It should refuse a value that is not a snapshot (E_SNAPSHOT_*, or
// E_INVALID_ARGUMENT) and leave the file as it was. Breaker after 9acbde1.

import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { readSnapshotFile, writeSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { UvirtioError } from '../../lib/errors.js';

t.test('a non-snapshot does not replace a snapshot file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'brk25b-snap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const o = await openTransport('sim:blk?state=suspend');
  const blk = await BlkDriver.open(o.transport);
  t.teardown(() => blk.close());
  await blk.stop();
  const good = blk.snapshot();
  for (const [name, bad] of [['a prototype-less object', Object.create(null)], ['an empty object', {}], ['an array', []]] as [string, unknown][]) {
    const path = join(dir, `${name.replace(/ /g, '-')}.json`);
    writeSnapshotFile(path, good);
    const before = readFileSync(path, 'utf8');
    let code = 'none';
    try {
      writeSnapshotFile(path, bad as never);
    } catch (e) {
      code = e instanceof UvirtioError ? e.code : `foreign ${(e as Error).constructor.name}`;
    }
    t.match(code, /^E_[A-Z_]+$/, `${name}: refused with a typed error`);
    t.equal(readFileSync(path, 'utf8'), before, `${name}: the good snapshot file is unchanged`);
    t.doesNotThrow(() => readSnapshotFile(path), `${name}: the file still reads as a snapshot`);
  }
});
