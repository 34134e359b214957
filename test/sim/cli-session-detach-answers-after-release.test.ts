// `uvirtio detach` returned as soon as the agent had answered, and the agent released the session
// (socket, name lock, device lock, the device's close and reset) only after its answer. A script's
// next command raced that release: `detach; attach DEV` was refused E_SESSION_EXISTS now and then,
// and a check of the runtime directory right after a detach found the device lock still there
// (cli-signals.test.ts, examples/rehearse.sh Ctrl-C, failed so in CI on a loaded machine).
// A detach that ends the session now answers once the session is gone.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(120_000);
const runtime = tempDir('uvirtio-detach-rt-');
const uv = uvInRuntime(runtime);
const DEVICE = 'sim:blk?latency=1';
t.teardown(() => void uv('detach', '--session', 'd'));

const leftovers = (): string[] => readdirSync(runtime).filter((f) => !f.endsWith('.log'));

t.test('detach, then at once: nothing left, the log says ended, the same device and name attach again', async (t) => {
  let r = uv('attach', DEVICE, '--name', 'd', '--traffic', '8');
  t.equal(r.status, 0, `attach: ${r.stderr}`);
  for (let round = 1; round <= 6; round++) {
    const verify = round % 2 === 0;
    r = uv('detach', '--session', 'd', ...(verify ? ['--verify'] : []));
    // Read before anything else can run: the answer came, so the session must be gone already.
    const left = leftovers();
    const log = readFileSync(join(runtime, 'd.log'), 'utf8');
    t.equal(r.status, 0, `round ${round}: detach${verify ? ' --verify' : ''} exits 0 (${r.stderr.trim()})`);
    t.same(left, [], `round ${round}: no socket, name lock or device lock when detach returns`);
    t.match(log.trimEnd().split('\n').at(-1) ?? '', /session d: ended \(status 0\)$/, `round ${round}: the session's log already ends with "ended" (its device closed and reset)`);
    r = uv('attach', DEVICE, '--name', 'd', '--traffic', '8');
    t.equal(r.status, 0, `round ${round}: the same device attaches again under the same name at once (${r.stderr.trim()})`);
  }
  r = uv('detach', '--session', 'd', '--verify', '--json');
  t.equal(r.status, 0, r.stderr);
  t.match(JSON.parse(r.stdout), { verdict: { lost: 0, duplicated: 0, corrupted: 0 } }, 'the last session verifies clean');
  t.same(leftovers(), [], 'nothing left at the end');
});

t.test('a detach --verify refused because the device is stopped leaves the session as it was', async (t) => {
  let r = uv('attach', DEVICE, '--name', 'd', '--traffic', '4');
  t.equal(r.status, 0, r.stderr);
  r = uv('stop', '--session', 'd');
  t.equal(r.status, 0, r.stderr);
  r = uv('detach', '--session', 'd', '--verify');
  t.equal(r.status, 2, 'refused: E_BAD_STATE is the caller\'s (exit 2)');
  t.match(r.stderr, /E_BAD_STATE/);
  t.ok(leftovers().includes('d.sock'), 'the session is still there');
  r = uv('status', '--session', 'd', '--json');
  t.equal(r.status, 0, 'and answers');
  r = uv('detach', '--session', 'd');
  t.equal(r.status, 0, r.stderr);
  t.same(leftovers(), [], 'a plain detach then ends it, nothing left');
});
