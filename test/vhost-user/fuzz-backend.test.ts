// The fault fuzzer's back-end half (fast-check): a vhost-user back-end (the in-process fake,
// fake-backend.ts) that misbehaves at a random message — it goes silent, hangs up, answers with
// the wrong request, bad flags or a payload of the wrong size, refuses with REPLY_ACK, or sends a
// message nobody asked for — while a BlkDriver opens, submits, stops, snapshots, reinits and
// closes in a random order. Properties: every operation ends within its bound (a hang fails the
// run), every error is a UvirtioError whose code the fault class explains, and every request
// settles exactly once. The fake never processes rings: requests end by the fault, the watchdog
// (E_DEVICE_UNRESPONSIVE) or the close.
// UVIRTIO_FUZZ_BACKEND_RUNS overrides the number of runs (default 1000).

import t from 'tap';
import fc from 'fast-check';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { Flag, Req } from '../../lib/transport/vhost-user/protocol.js';
import { UvirtioError, type ErrorCode } from '../../lib/errors.js';
import { FakeBackend, header, reply, u64, type Action, type Received } from './fake-backend.js';

/** The back-end fault classes and the codes each may surface as. */
const FAULTS = {
  // Silent on one message only: when later replies come, they answer the wrong request. The fake
  // runs on this process's event loop: when the loop is late by more than the short reply bound,
  // the bound's timer runs before the fake's read, our bytes are still unread, and the front-end
  // rightly reports a back-end that did not take the connection up (E_VHOST_BUSY).
  silent: ['E_VHOST_TIMEOUT', 'E_VHOST_PROTOCOL', 'E_VHOST_BUSY'],
  hangup: ['E_VHOST_LOST', 'E_VHOST_UNREACHABLE'],
  'wrong-request': ['E_VHOST_PROTOCOL'],
  'bad-flags': ['E_VHOST_PROTOCOL'],
  'short-payload': ['E_VHOST_PROTOCOL', 'E_VHOST_TIMEOUT', 'E_VHOST_BUSY'],
  'refuse': ['E_VHOST_REFUSED', 'E_FEATURES_NOT_OK'],
  unsolicited: ['E_VHOST_PROTOCOL'],
} as const satisfies Record<string, readonly ErrorCode[]>;
type Fault = keyof typeof FAULTS;

/**
 * The faults that leave the front-end waiting for bytes that never come: only their runs get a short
 * reply bound (so they end fast; the ring-drain bound is short in every run: the fake completes nothing). Elsewhere the bound is long, so that a busy machine never turns a
 * slow answer into an E_VHOST_TIMEOUT the fault does not explain.
 */
const SILENCING = new Set<Fault>(['silent', 'short-payload']);
const SHORT_REPLY_MS = 150;
const LONG_REPLY_MS = 3000;

/** Codes every run may see: the fake completes nothing (the watchdog ends requests), closing rejects the rest. */
const ALWAYS: readonly ErrorCode[] = ['E_DEVICE_UNRESPONSIVE', 'E_CLOSED', 'E_STOP_TIMEOUT'];

const MESSAGES = [Req.GET_FEATURES, Req.GET_PROTOCOL_FEATURES, Req.GET_QUEUE_NUM, Req.GET_CONFIG, Req.SET_FEATURES, Req.SET_MEM_TABLE,
  Req.SET_VRING_NUM, Req.SET_VRING_BASE, Req.SET_VRING_ADDR, Req.SET_VRING_KICK, Req.SET_VRING_CALL, Req.SET_VRING_ENABLE, Req.GET_VRING_BASE];

const GETS = new Set<number>([Req.GET_FEATURES, Req.GET_PROTOCOL_FEATURES, Req.GET_QUEUE_NUM, Req.GET_CONFIG, Req.GET_VRING_BASE]);

/** The fake's answer for the faulty message. */
function actionFor(fault: Fault, m: Received): Action {
  switch (fault) {
    case 'silent': return { kind: 'silent' };
    case 'hangup': return { kind: 'hangup' };
    case 'wrong-request': return { kind: 'raw', bytes: reply(m.request === Req.GET_FEATURES ? Req.GET_CONFIG : Req.GET_FEATURES, u64(0n)) };
    case 'bad-flags': return { kind: 'raw', bytes: Buffer.concat([header(m.request, 0x2 | Flag.REPLY, 8), u64(0n)]) };
    case 'short-payload': return { kind: 'raw', bytes: reply(m.request, Buffer.alloc(3)) };
    // REPLY_ACK answers settings; a query (GET_*) has no way to refuse but its own answer.
    case 'refuse': return GETS.has(m.request) ? { kind: 'default' } : { kind: 'ack', status: 1n };
    case 'unsolicited': return { kind: 'raw', bytes: reply(Req.GET_QUEUE_NUM, u64(1n)) };
  }
}

type Op = 'io' | 'wait' | 'migrate' | 'close';
const runArb = fc.record({
  fault: fc.constantFrom(...(Object.keys(FAULTS) as Fault[])),
  message: fc.constantFrom(...MESSAGES),
  /** The occurrence of that message (over all connections) that misbehaves. */
  nth: fc.integer({ min: 0, max: 2 }),
  ops: fc.array(fc.constantFrom<Op>('io', 'io', 'wait', 'migrate', 'close'), { minLength: 1, maxLength: 6 }),
});

const RUN_BOUND_MS = 8000;
const runs = Number(process.env.UVIRTIO_FUZZ_BACKEND_RUNS ?? 1000);

t.test(`back-end fault fuzzer: ${runs} runs`, async (t) => {
  const seen: Record<string, number> = {};
  let requests = 0;
  await fc.assert(fc.asyncProperty(runArb, async ({ fault, message, nth, ops }) => {
    let count = 0;
    const f = await FakeBackend.start({
      script: (m) => (m.request === message && count++ === nth ? actionFor(fault, m) : undefined),
    });
    const allowed = new Set<ErrorCode>([...FAULTS[fault], ...ALWAYS]);
    const check = (what: string, e: unknown): void => {
      if (!(e instanceof UvirtioError)) throw new Error(`${what}: a foreign error ${String((e as Error)?.stack ?? e)}`);
      if (!allowed.has(e.code)) throw new Error(`${what}: ${e.code} (${e.message}) is not explained by ${fault} at ${message}#${nth}`);
      seen[e.code] = (seen[e.code] ?? 0) + 1;
    };
    const pending: Promise<unknown>[] = [];
    let blk: BlkDriver | undefined;
    let timer: NodeJS.Timeout | undefined;
    const body = (async (): Promise<void> => {
      try {
        const bound = SILENCING.has(fault) ? SHORT_REPLY_MS : LONG_REPLY_MS;
        const dev = await openTransport(`${f.address}?timeout=${bound}&drain=${SHORT_REPLY_MS}`);
        blk = await BlkDriver.open(dev.transport, { requestTimeoutMs: 150, resetTimeoutMs: 300 });
      } catch (e) {
        check('open', e);
        return;
      }
      for (const op of ops) {
        if (op === 'io') {
          for (let i = 0; i < 3; i++) {
            requests++;
            pending.push(blk.write(i, new Uint8Array(512).fill(i)).then(() => undefined, (e: unknown) => check('a request', e)));
          }
        } else if (op === 'wait') {
          await new Promise((r) => setTimeout(r, 5));
        } else if (op === 'migrate' && blk.device.phase === 'live') {
          try {
            await blk.stop({ timeoutMs: 300 });
            await blk.reinit(blk.snapshot(), { timeoutMs: 300 });
          } catch (e) {
            check('stop/snapshot/reinit', e);
            if ((blk.device.phase as string) === 'stopped') await blk.close(e as UvirtioError);
          }
        } else if (op === 'close') {
          await blk.close();
        }
      }
      await blk.close();
      await Promise.all(pending);
    })();
    try {
      await Promise.race([body, new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the run did not end within ${RUN_BOUND_MS} ms: ${fault} at message ${message}#${nth}, ops ${ops.join(' ')}`)), RUN_BOUND_MS);
      })]);
    } finally {
      clearTimeout(timer);
      await f.close();
    }
  }), { numRuns: runs, seed: 4242, endOnFailure: true, includeErrorInReport: true });
  t.pass(`${runs} runs, ${requests} requests, each settled; codes seen ${JSON.stringify(seen)}`);
  for (const code of ['E_VHOST_TIMEOUT', 'E_VHOST_LOST', 'E_VHOST_PROTOCOL'] as const) t.ok((seen[code] ?? 0) > 0, `${code} was reported`);
});
