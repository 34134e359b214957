// The examples, run as a user runs them: `node dist/examples/NAME.js` (and the shell script), on
// the reference device. Each prints one JSON line and exits 0 on success.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

function run(cmd: string, ...args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
const example = (name: string, ...args: string[]) => run(process.execPath, join('dist', 'examples', `${name}.js`), ...args);

t.test('copy-file: a file onto sim:blk and back, identical', async (t) => {
  const dir = tempDir('uvirtio-copy-');
  const file = join(dir, 'data.bin');
  writeFileSync(file, randomBytes(300_001)); // not a whole number of sectors
  const r = example('copy-file', file);
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { ok: true, bytes: 300_001 });
  const small = example('copy-file', file, 'sim:blk?capacity=8');
  t.equal(small.status, 1, 'a device too small is a clear error');
  t.match(small.stderr, /needs 586 sectors/);
});

t.test('two-nics: frames both ways between two joined reference NICs', async (t) => {
  const r = example('two-nics', '60');
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { ok: true, sent: 60, receivedByA: 30, receivedByB: 30, missing: 0 });
});

t.test('rng-driver: a driver written on the public API reads entropy from sim:rng', async (t) => {
  const r = example('rng-driver', 'sim:rng?seed=42', '4096');
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.match(out, { ok: true, bytes: 4096 });
  t.ok(out.distinct > 200, `bytes look random (${out.distinct} distinct values)`);
  t.equal(example('rng-driver', 'sim:rng?seed=42', '4096').stdout, r.stdout, 'a seed repeats the stream');
  const wrong = example('rng-driver', 'sim:blk');
  t.equal(wrong.status, 1);
  t.match(wrong.stderr, /E_NOT_VIRTIO/);
});

t.test('console-echo: bytes round a sim:console loopback port, by number and by name; a wrong port is a bounded error', async (t) => {
  const r = example('console-echo', 'sim:console', '1', '5000');
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { ok: true, port: 1, name: 'uvirtio.port.1', multiport: true, echoed: 5000, badControl: 0 });
  const single = example('console-echo', 'sim:console?multiport=0', '0', '100');
  t.equal(single.status, 0, single.stderr);
  t.match(JSON.parse(single.stdout), { ok: true, port: 0, multiport: false, echoed: 100 });
  const wrong = example('console-echo', 'sim:blk');
  t.equal(wrong.status, 1);
  t.match(wrong.stderr, /E_NOT_VIRTIO/);
});

t.test('rehearse.sh: attach, stop, vq-state, snapshot, reinit --to, detach --verify — exit 0', async (t) => {
  const runtime = tempDir('uvirtio-example-rt-');
  const env = { ...process.env, UVIRTIO_RUNTIME_DIR: runtime };
  const ok = spawnSync('sh', [join('examples', 'rehearse.sh'), 'sim:blk?mode=hold&latency=1', 'sim:blk?latency=1', '2'], { encoding: 'utf8', env, timeout: 120_000 });
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /attached sim:blk\?mode=hold&latency=1/);
  t.match(ok.stdout, /queue 0: avail \d+, used \d+/);
  t.match(ok.stdout, /lost 0, duplicated 0, corrupted 0/);
  const bad = spawnSync('sh', [join('examples', 'rehearse.sh'), 'sim:gpu'], { encoding: 'utf8', env, timeout: 60_000 });
  t.not(bad.status, 0, 'a bad address stops the script');
  t.match(bad.stderr, /E_BAD_ADDRESS/);
});
