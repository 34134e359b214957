// Ctrl-C ends a front-end process at once whatever the back-end does: a process waiting in the
// handshake, for requests the back-end never completes (a worker-thread poll on the call eventfd
// is out), or for a GET_VRING_BASE never answered — with a 60 s reply timeout — runs its SIGINT
// handler and exits 130 promptly. (Every vhost-user wait is asynchronous; libc's worker polls are
// woken at exit.)
import { spawn } from 'node:child_process';
import t from 'tap';
import { Req } from '../../lib/transport/vhost-user/protocol.js';
import { FakeBackend } from './fake-backend.js';

const CHILD = new URL('./front-end-child.js', import.meta.url).pathname;
/** Far below the 60 s the child would otherwise wait, far above a prompt exit. */
const WATCHDOG_MS = 10_000;

const stages = [
  { stage: 'open', what: 'in the handshake (GET_FEATURES never answered)', silent: Req.GET_FEATURES },
  { stage: 'requests', what: 'for requests the back-end never completes (interrupts on)', silent: -1 },
  { stage: 'stop', what: 'for a GET_VRING_BASE never answered', silent: Req.GET_VRING_BASE },
] as const;

for (const s of stages) {
  t.test(`SIGINT while waiting ${s.what}: exit 130`, async (t) => {
    const f = await FakeBackend.start({ script: (m) => (m.request === s.silent ? { kind: 'silent' } : undefined) });
    t.teardown(() => f.close());
    const child = spawn(process.execPath, [CHILD, `${f.address}?timeout=60000&drain=200`, s.stage], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    await new Promise<void>((r) => child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('waiting')) r();
    }));
    await new Promise((r) => setTimeout(r, 300)); // well into the wait
    const sent = Date.now();
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), WATCHDOG_MS);
    const code = await exited;
    clearTimeout(timer);
    t.equal(code, 130, `the SIGINT handler ran and the process exited (${code === null ? 'killed by the watchdog' : `after ${Date.now() - sent} ms`}) ${err}`);
    t.notMatch(out, /the wait ended/, 'the wait itself had not ended');
  });
}
