// The sending half of bench/net-stream.ts's two-process window (`processes: 2`), run as a child
// process (child_process.fork) so that sender and receiver each have an event loop and a vCPU of their
// own, as the two dpdk-testpmd processes of its peer do. Started with
//   node dist/bench/net-sender.js <split|packed> <frame bytes> <poll|msix> <event-idx 0|1> <receiver MAC aa:bb:…>
// and driven over the IPC channel (SenderCommand / SenderReport in net-stream.ts). It opens its NIC, reports
// 'ready', sends from WINDOW pumps once told 'start' and reports its own timed window, stops on 'stop'
// (or when the parent goes away) and reports how many sends never completed.

import { setTimeout as delay } from 'node:timers/promises';
import { DRAIN_MS, frame, openNic, pumpSends, type Ring, type SenderCommand, type SenderReport } from './net-stream.js';

/** The longest the sender waits for its parent's next command (ms): the parent sends each within a few seconds. */
const COMMAND_WAIT_MS = 60_000;

/** Reports to the parent while it listens (after it went away a send would be an 'error' on process). */
function report(r: SenderReport): void {
  if (process.connected) process.send?.(r, undefined, undefined, () => undefined);
}

/** Lets go of the parent's channel if it is still there. */
function letGo(): void {
  if (process.connected) process.disconnect();
}

async function main(): Promise<void> {
  const [ring, sizeArg, mode, eventIdxArg, macArg] = process.argv.slice(2);
  if (!process.send) throw new Error('net-sender runs as a child of bench/net-stream.ts (no IPC channel)');
  // Listening before anything is awaited: a parent that goes away while the NIC opens is seen.
  let parentGone = !process.connected;
  const commands: SenderCommand[] = [];
  let wake: (() => void) | undefined;
  process.on('message', (m: SenderCommand) => { commands.push(m); wake?.(); });
  let goneNow: () => void = () => undefined;
  /** Settles when the parent goes away: the window ends early (the NIC is closed in `finally`). */
  const gone = new Promise<void>((resolve) => { goneNow = resolve; });
  if (parentGone) goneNow();
  process.on('disconnect', () => { parentGone = true; goneNow(); wake?.(); });
  if (ring !== 'split' && ring !== 'packed') throw new Error(`the sending NIC must be split or packed, not ${String(ring)}`);
  if (mode !== 'poll' && mode !== 'msix') throw new Error(`the mode must be poll or msix, not ${String(mode)}`);
  const size = Number(sizeArg);
  const mac = Uint8Array.from((macArg ?? '').split(':').map((h) => parseInt(h, 16)));
  if (mac.length !== 6 || mac.some((b) => !(b >= 0 && b <= 255))) throw new Error(`bad receiver MAC ${String(macArg)}`);
  const tx = await openNic(ring as Ring, mode, eventIdxArg !== '0');
  const pumps = pumpSends(tx, frame(mac, tx.mac, size));
  /** The parent's next command; undefined when it went away or sent none within COMMAND_WAIT_MS (the sender then ends). */
  const next = async (): Promise<SenderCommand | undefined> => {
    const until = Date.now() + COMMAND_WAIT_MS;
    while (!commands.length && !parentGone && Date.now() < until) {
      await new Promise<void>((r) => { wake = r; setTimeout(r, until - Date.now()).unref(); });
    }
    return commands.shift();
  };
  try {
    report({ type: 'ready' });
    const start = await next();
    if (start?.type !== 'start') return;
    pumps.start();
    await Promise.race([delay(start.warmupMs, undefined, { ref: false }), pumps.failed, gone]);
    const [tx0, t0] = [pumps.sent, process.hrtime.bigint()];
    await Promise.race([delay(start.seconds * 1000, undefined, { ref: false }), pumps.failed, gone]);
    const [tx1, t1] = [pumps.sent, process.hrtime.bigint()];
    report({ type: 'window', txPps: (tx1 - tx0) / (Number(t1 - t0) / 1e9) });
    await next(); // 'stop', or the parent went away
    const stalled = await pumps.stop(DRAIN_MS);
    report({ type: 'stopped', stalledSends: stalled });
  } finally {
    await tx.close();
    await pumps.settled(DRAIN_MS);
  }
}

main().then(letGo, (e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  console.error(`net-sender: ${message}`);
  report({ type: 'failed', message });
  process.exitCode = 1;
  letGo();
});
