// Breaker 30: README, "The command line": snapshot files are written atomically, "never replacing
// ... a file that is not a snapshot". writeSnapshotFile (used by `uvirtio snapshot --out`) decides
// that a file is a snapshot when its first 4 KiB merely CONTAIN the text `"format"` and
// `"uvirtio-snapshot"` anywhere: the package's own JSON Schema (docs/snapshot.schema.json, shipped
// as uvirtio/snapshot.schema.json) and a plain notes file quoting the format are both replaced by
// a snapshot. Either must be refused (E_SNAPSHOT_IO) and left as it was.
import t from 'tap';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSnapshotFile } from '../../lib/virtio/snapshot/index.js';
import { UvirtioError } from '../../lib/errors.js';
import { tempDir } from '../support/tmp.js';
import { stoppedBlkSnapshot } from '../support/blk-sim.js';

const dir = tempDir('uvirtio-snapout-');


function refusal(f: () => unknown): string {
  try {
    f();
    return 'no error: the file was replaced';
  } catch (e) {
    return e instanceof UvirtioError ? `${e.code}: ${e.message}` : `foreign: ${String(e)}`;
  }
}

const snap = await stoppedBlkSnapshot();

t.test('the snapshot JSON Schema is not a snapshot: not replaced', async (t) => {
  const target = join(dir, 'snapshot.schema.json');
  copyFileSync(join(process.cwd(), 'docs', 'snapshot.schema.json'), target);
  const before = readFileSync(target, 'utf8');
  t.match(refusal(() => writeSnapshotFile(target, snap)), /^E_SNAPSHOT_IO: .*not a uvirtio snapshot/);
  t.equal(readFileSync(target, 'utf8'), before, 'the schema is left as it was');
});

t.test('a text file that quotes the format name is not a snapshot: not replaced', async (t) => {
  const target = join(dir, 'notes.txt');
  const before = 'migration notes: check that "format" is "uvirtio-snapshot" before the cut-over\nstep 2: ...\n';
  writeFileSync(target, before);
  t.match(refusal(() => writeSnapshotFile(target, snap)), /^E_SNAPSHOT_IO: .*not a uvirtio snapshot/);
  t.equal(readFileSync(target, 'utf8'), before, 'the notes are left as they were');
});
