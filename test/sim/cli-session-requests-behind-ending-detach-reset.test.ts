// Breaker 31c. Requests that reached the agent's socket together with the detach that ends the
// session — here the agent is SIGSTOPped (frozen, as a loaded machine freezes it), three clients
// connect and send a detach, a second detach and a stop, then SIGCONT — are not answered: the agent
// runs the first detach, answers it, and exits with the other two connections accepted but their
// requests never read; their clients get a reset. Through the CLI (`uvirtio detach` twice at once,
// loops of 6): one "detached" exit 0, the other "E_NO_SESSION: cannot reach session "s": read
// ECONNRESET (hint: check `uvirtio status`)" exit 2, every time. The README says "Requests still
// waiting when the session ends are answered: a `detach` as detached …, anything else
// E_NO_SESSION"; serve() has no path for a request that arrives while the session ends
// (answerWaiting() has already run; the request is queued behind an exit). Should: every request
// the agent's socket took before the session ended is answered — the second detach "detached"
// (ok), the stop E_NO_SESSION ("… before "stop" had its turn") — never a reset.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { sleep, uvInRuntime } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

t.setTimeout(60_000);
const runtime = tempDir('uvirtio-behindend-rt-');
const uv = uvInRuntime(runtime);

/** Connects, sends `req` once connected (resolved then), and collects the answer line or the error. */
function send(name: string, req: unknown): { sent: Promise<void>; answer: Promise<string> } {
  const sock = connect(join(runtime, `${name}.sock`));
  let buf = '';
  let sentResolve!: () => void;
  const sent = new Promise<void>((r) => (sentResolve = r));
  const answer = new Promise<string>((resolve) => {
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n', () => sentResolve()));
    sock.on('data', (d: Buffer) => (buf += d.toString()));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      sentResolve();
      resolve(`error ${e.code ?? e.message}`);
    });
    sock.on('close', () => resolve(buf.trim() || 'closed without an answer'));
  });
  return { sent, answer };
}

for (let round = 1; round <= 3; round++) {
  t.test(`round ${round}: a detach, a second detach and a stop sent together while the agent is frozen are all answered`, async (t) => {
    const name = `s${round}`;
    const a = uv('attach', 'sim:blk?latency=1', '--name', name, '--traffic', '4', '--json');
    t.equal(a.status, 0, a.stderr);
    const pid = (JSON.parse(a.stdout) as { pid: number }).pid;
    t.teardown(() => {
      try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
      uv('detach', '--session', name);
    });
    process.kill(pid, 'SIGSTOP');
    const first = send(name, { cmd: 'detach', args: { verify: false, timeoutMs: 5000 } });
    await first.sent;
    await sleep(50);
    const second = send(name, { cmd: 'detach', args: { verify: false, timeoutMs: 5000 } });
    const stop = send(name, { cmd: 'stop', args: { mechanism: 'auto', timeoutMs: 5000 } });
    await Promise.all([second.sent, stop.sent]);
    process.kill(pid, 'SIGCONT');
    const [r1, r2, r3] = await Promise.all([first.answer, second.answer, stop.answer]);
    t.comment(`first detach: ${r1.slice(0, 100)}`);
    t.comment(`second detach: ${r2.slice(0, 160)}`);
    t.comment(`stop: ${r3.slice(0, 200)}`);
    t.comment(`agent log:\n${readFileSync(join(runtime, `${name}.log`), 'utf8').trim()}`);
    t.match(r1, /^\{"ok":true/, 'the first detach is answered: detached');
    t.match(r2, /^\{"ok":true/, 'the second detach, sent before the session ended, is answered detached (not a reset)');
    t.match(r3, /^\{"ok":false,"error":\{"code":"E_NO_SESSION"/, 'the stop sent with them is answered E_NO_SESSION (not a reset)');
  });
}
