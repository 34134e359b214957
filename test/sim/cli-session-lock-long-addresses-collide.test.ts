// Breaker 30: the per-device lock is named after the device address cut to 64 characters
// (`device-${nameFor(address)}.lock`), so two different devices whose addresses agree on their
// first 64 characters share one lock: attaching the second is refused with E_SESSION_EXISTS,
// "<second device> is already attached (session <first>)" — a device nobody holds. Realistic for
// vhost-user back-ends beside each other in one deep directory
// (vhost-user:/var/lib/…/exports/scratch-disk-01.sock and …-02.sock). Shown here with two
// reference devices that differ only past the 64th character.
import t from 'tap';
import { uvInRuntime } from '../support/cli.js';
import { readdirSync } from 'node:fs';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-lockname-rt-');
const work = tempDir('uvirtio-lockname-');

const uv = uvInRuntime(runtime, work);

const common = 'sim:blk?mode=hold&latency=1&blksize=4096&segmax=8&sizemax=65536&layout=split';
const first = `${common}&queues=1`;
const second = `${common}&queues=2`;

t.teardown(() => {
  uv('detach', '--session', 'first');
  uv('detach', '--session', 'second');
});

t.test('two different devices whose addresses share their first 64 characters can both be attached', async (t) => {
  t.not(first, second, 'two different devices');
  const a = uv('attach', first, '--name', 'first');
  t.equal(a.status, 0, a.stderr);
  const b = uv('attach', second, '--name', 'second');
  t.equal(b.status, 0, `the second device is not attached anywhere, yet: ${b.stderr.trim()}`);
  t.notMatch(b.stderr, /E_SESSION_EXISTS/, 'not refused as "already attached" to the other device\'s session');
  t.equal(readdirSync(runtime).filter((f) => f.endsWith('.lock')).length, 2, 'one lock per device');
});
