// Breaker 30: a command's result leaves through console.log and then process.exit() at once
// (cli/exit.ts finish()). On a pipe whose reader is not draining at that instant —
// `uvirtio rehearse --json | jq` — Node queues what does not fit in the
// pipe buffer (64 KiB) and the exit drops it: `rehearse --cycles 400 --json` (≈ 77 KB of cycle
// reports) reaches the reader cut at 65536 bytes, invalid JSON, and uvirtio exits 0. The verdict
// a script parses is lost while the status says success. (The same for any output past 64 KiB:
// check --json, an error object quoting a large snapshot field.) Everything printed must reach the
// pipe before the process exits (cli/exit.ts finish() now waits for queued output, bounded by
// OUTPUT_DRAIN_MS), and a reader that goes away must not hold the exit.
// (The breaker's first reader waited for uvirtio's exit before reading anything: no writer can pass
// 77 KB through a 64 KiB pipe to it. It now waits for uvirtio's exit or 12 s, whichever comes
// first: the old code exits with the rest dropped; uvirtio now waits, and the reader reads it all.)
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const bin = join(process.cwd(), 'bin', 'uvirtio.js');
const work = tempDir('uvirtio-jsonpipe-');

t.test('rehearse --json into a pipe whose reader is up to 12 s behind: the whole object arrives', async (t) => {
  // A consumer busy with something else, or jq still starting on a loaded machine. uvirtio's status
  // is kept in a file.
  const r = spawnSync('bash', ['-c', '{ "$NODE" "$BIN" rehearse --cycles 400 --json; echo $? > status; } | { for i in $(seq 240); do [ -e status ] && break; sleep 0.05; done; cat; }'], {
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

t.test('rehearse --json into a reader that reads 100 bytes and goes away: uvirtio still ends', async (t) => {
  const r = spawnSync('bash', ['-c', '"$NODE" "$BIN" rehearse --cycles 400 --json | { sleep 0.5; head -c 100 >/dev/null; }; echo "${PIPESTATUS[0]}" > status2'], {
    encoding: 'utf8', timeout: 25_000, killSignal: 'SIGKILL', cwd: work,
    env: { ...process.env, NODE: process.execPath, BIN: bin },
  });
  t.equal(r.signal, null, 'the pipeline ended on its own, well within the 30 s output bound');
  t.match(readFileSync(join(work, 'status2'), 'utf8').trim(), /^\d+$/, 'uvirtio exited with a status');
});
