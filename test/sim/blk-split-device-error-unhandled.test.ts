// Breaker 28 (FAILS at 8f9c7da): a call larger than depth × maxTransfer whose early request fails
// on the device (a bad status byte, a short used length, an IOERR) ends a default Node process,
// even when the caller awaits the call in try/catch. RequestRunner.run keeps each started
// request's promise in done[] with no handler, then awaits pool.takeSome() for the next slot; the
// failed request rejects while nobody listens (unhandledRejection), and only later does
// Promise.allSettled(done) attach a handler (PromiseRejectionHandledWarning). Reproduce outside
// tap: readInto(0, 128, new Uint8Array(64 KiB)) at depth 1, maxTransfer 16 KiB, after
// sim.injectFault({ kind: 'bad-blk-status' }) — the process exits with code 1 at the catch.
// What should happen: the call rejects with the first failure, nothing unhandled.
import t from 'tap';
import { settledCode } from '../support/codes.js';
import { openBlkSim } from '../support/blk-sim.js';
import { unhandledRejections } from '../support/unhandled.js';

const calls = {
  readInto: (blk: Awaited<ReturnType<typeof openBlkSim>>['blk']) => blk.readInto(0, 128, new Uint8Array(64 * 1024)),
  read: (blk: Awaited<ReturnType<typeof openBlkSim>>['blk']) => blk.read(0, 128),
  readMany: (blk: Awaited<ReturnType<typeof openBlkSim>>['blk']) => blk.readMany([{ sector: 0, sectors: 64 }, { sector: 64, sectors: 64 }]),
  write: (blk: Awaited<ReturnType<typeof openBlkSim>>['blk']) => blk.write(0, new Uint8Array(64 * 1024)),
  writeMany: (blk: Awaited<ReturnType<typeof openBlkSim>>['blk']) => blk.writeMany([{ sector: 0, data: new Uint8Array(64 * 1024) }]),
};

for (const kind of ['bad-blk-status', 'used-len-short'] as const) {
  for (const [name, call] of Object.entries(calls)) {
    t.test(`${name} split over 4 requests at depth 1, the first gets ${kind}: rejects typed, nothing unhandled`, async (t) => {
      const unhandled = unhandledRejections(t);
      const { sim, blk } = await openBlkSim(t, { latencyMs: 5, depth: 1 });
      sim.injectFault({ kind });
      const code = await settledCode(call(blk), 3000);
      t.match(code, /^E_DEVICE_/, `the call rejects with the device's error (got ${code})`);
      await new Promise((r) => setTimeout(r, 50));
      t.same(unhandled.map(String), [], 'no unhandled rejection (a default Node process exits with code 1 here)');
    });
  }
}
