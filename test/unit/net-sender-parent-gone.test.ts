// Found by a breaker (fixed: net-sender reports and lets go only while process.connected, and ends
// its window when the parent goes). What it was:
// bench/net-sender.ts (the two-process vm-net sender) ends by calling process.disconnect() and
// reports with process.send() without asking whether the IPC channel is still there. Once the parent
// has disconnected — which streamToChild's finally does whenever the child has not exited yet, i.e.
// on every ordinary run while the child is still closing its NIC after 'stopped', and after any
// failure of the parent — Node emits 'error' on `process` (ERR_IPC_DISCONNECTED from disconnect(),
// ERR_IPC_CHANNEL_CLOSED from send()), nobody listens, and the child dies of an uncaught exception
// with a stack trace on the inherited stderr (and, for a report in the middle of the window, before
// its `finally` has closed the NIC). Reproduced here on the argument-check path (no device opened):
// the parent goes away at once; the child should end with its one `net-sender: …` line.

import t from 'tap';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

t.test('net-sender whose parent went away ends with one line, not an uncaught IPC error', async (t) => {
  const script = fileURLToPath(new URL('../../bench/net-sender.js', import.meta.url));
  const child = fork(script, ['bogus', '60', 'poll', '1', '02:00:00:00:00:01'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  child.disconnect(); // the parent goes away before the child reports
  const [code] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(code, 1, 'exit status 1');
  t.notMatch(stderr, /ERR_IPC|Unhandled 'error' event|node:internal/, `no uncaught IPC error:\n${stderr}`);
  t.match(stderr, /^net-sender: the sending NIC must be split or packed/m, 'its one line');
});
