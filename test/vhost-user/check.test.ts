// `uvirtio check` against a real qemu-storage-daemon (vhost-user-blk export), as CI runs it: --json
// and --junit, a scratch sector named; what a user relies on is asserted by
// test/support/check-real.ts. The daemon conforms: no MUST fails, and features.no-reserved passes
// now that the transport keeps vhost-user's own bits (26, 30) out of the device's offer. Every
// byte of the image but the scratch sector is unchanged, and the scratch sector is written back.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { uvSync } from '../support/cli.js';
import { assertCheckRun } from '../support/check-real.js';
import { tempDir } from '../support/tmp.js';
import { Daemon, makeImage } from './daemon.js';

const SCRATCH = 8;
/** The whole suite under a loaded 2-core host; it takes about a second unloaded. */
const BOUND_MS = 60_000;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

t.test('uvirtio check on qemu-storage-daemon: no MUST fails, the image untouched but the scratch sector', async (t) => {
  const img = makeImage(16);
  // Every sector distinct, so that a write anywhere shows.
  const before = Buffer.alloc(img.bytes);
  for (let i = 0; i < before.length; i += 4) before.writeUInt32LE((i * 2654435761) >>> 0, i);
  fs.writeFileSync(img.file, before);
  const d = await Daemon.start(img, 'check');
  t.teardown(async () => {
    await d.kill('SIGKILL');
    img.remove();
  });
  const dir = tempDir('uvirtio-vu-check-');
  const junit = path.join(dir, 'check.xml');
  const t0 = Date.now();
  const r = uvSync({ UVIRTIO_RUNTIME_DIR: dir }, process.cwd(), ['check', d.address, '--json', '--junit', junit, '--scratch-sector', String(SCRATCH)], BOUND_MS + 10_000);
  const ms = Date.now() - t0;
  t.comment(`uvirtio check ${d.address}: exit ${r.status} in ${ms} ms${r.stderr ? `; stderr ${r.stderr}` : ''}`);
  const doc = assertCheckRun(t, { address: d.address, status: r.status, stdout: r.stdout, junit: fs.existsSync(junit) ? fs.readFileSync(junit, 'utf8') : null, ms }, [], BOUND_MS);
  t.equal(doc ? (BigInt(doc.offered) & (1n << 34n)) !== 0n : null, false, `split ring only (RING_PACKED not offered: ${String(doc?.offered)})`);
  const by = (id: string): string | undefined => doc?.results.find((c) => c.id === id)?.result;
  t.equal(by('features.no-reserved'), 'pass', 'features.no-reserved passes: bit 26 (VHOST_F_LOG_ALL) is not shown as a device feature');
  t.equal(by('blk.read-after-write'), 'pass', 'the scratch sector was written and read back');
  await d.kill();
  const after = fs.readFileSync(img.file);
  t.equal(sha(after), sha(before), 'the image is unchanged (scratch sector written back): same SHA-256');
});
