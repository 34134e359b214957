// Breaker 30: a command's result leaves through console.log and then process.exit() at once
// (cli/exit.ts finish()). On a pipe whose reader is not draining at that instant —
// `uvirtio rehearse --json | jq` — Node queues what does not fit in the
// pipe buffer (64 KiB) and the exit drops it: `rehearse --cycles 400 --json` (≈ 77 KB of cycle
// reports) reaches the reader cut at 65536 bytes, invalid JSON, and uvirtio exits 0. The verdict
// a script parses is lost while the status says success. (The same for any output past 64 KiB:
// check --json, an error object quoting a large snapshot field.) Everything printed must reach the
// pipe before the process exits.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const work = tempDir('uvirtio-jsonpipe-');

t.test('rehearse --json into a pipe whose reader is busy until uvirtio exits: the whole object arrives', async (t) => {
  // The reader reads only once uvirtio has exited (a consumer busy with something else, jq still
  // starting on a loaded machine): deterministic, where a reader racing the writer loses the same
  // bytes most of the time. uvirtio's status is kept in a file.
  const r = spawnSync('bash', ['-c', '{ "$NODE" "$BIN" rehearse --cycles 400 --json; echo $? > status; } | { while [ ! -e status ]; do sleep 0.05; done; cat; }'], {
    encoding: 'utf8', timeout: 50_000, killSignal: 'SIGKILL', cwd: work, maxBuffer: 64 << 20,
    env: { ...process.env, NODE: process.execPath, BIN: bin },
  });
  t.equal(readFileSync(join(work, 'status'), 'utf8').trim(), '0', `uvirtio exited 0 ${r.stderr}`);
  let parsed: { ok?: boolean; cycles?: number } | string;
  try {
    parsed = JSON.parse(r.stdout) as { ok: boolean; cycles: number };
  } catch (e) {
    parsed = `not JSON after ${r.stdout.length} bytes: ${(e as Error).message}`;
  }
  t.match(parsed, { ok: true, cycles: 400 }, 'one complete JSON object on stdout');
});
