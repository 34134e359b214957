// Virtqueues (virtio 1.2 §2.7 split, §2.8 packed), once per layout the device offers: each check
// reads the layout's traffic run (../traffic.ts) and owns the E_DEVICE_* codes of its clause; a
// run stopped by another clause's fault leaves it n/a (the check for that code fails).

import { DeviceType, Feature, type Layout } from '../../../lib/spec/index.js';
import type { ErrorCode } from '../../../lib/errors.js';
import { trafficOf, type Phase, type TrafficRun } from '../traffic.js';
import { fail, na, pass, warn, type Check, type Level, type Verdict } from '../types.js';

const TYPES = [DeviceType.BLK, DeviceType.NET, DeviceType.RNG];

/** fail when the run stopped on one of `codes` (or timed out in one of `phases`), n/a when it stopped on something else, else `ok`. */
function judge(run: TrafficRun, codes: readonly ErrorCode[], phases: readonly Phase[], ok: () => Verdict): Verdict {
  if (run.error && codes.includes(run.error.e.code)) return fail(`${run.error.e.code}: ${run.error.e.message}`);
  if (run.timeout && phases.includes(run.timeout.phase)) {
    return run.mayHold && !run.timeout.used ? warn(`waited for ${run.timeout.what}; ${run.mayHold}: the ring could not be checked`) : fail(`waited for ${run.timeout.what}`);
  }
  if (run.error) return na(`the traffic stopped at ${run.error.e.code} (${run.error.phase}), which another check reports`);
  if (run.timeout) return na(`the traffic stopped waiting for ${run.timeout.what} (${run.timeout.phase}), which another check reports`);
  return ok();
}

interface QueueCheckSpec {
  what: string;
  section: string;
  level: Level;
  clause: string;
  does: string;
  only?: Layout;
  needs?: number[];
  verdict(run: TrafficRun): Verdict;
}

const SPECS: readonly QueueCheckSpec[] = [
  {
    what: 'chains', section: '2.7.5, 2.8.6', level: 'MUST',
    clause: 'the device follows NEXT through chained descriptors and returns every chain made available',
    does: 'sends 3 × the ring size chained requests (header / data / status for blk), half a ring at a time, each wait bounded',
    verdict: (run) => judge(run, [], ['chains'], () => pass(`${run.completed.chains} chains of ${run.descsPerChain} descriptors in a ${run.size}-entry ring`)),
  },
  {
    what: 'used-id', section: '2.7.8, 2.8.21', level: 'MUST',
    clause: 'a used element names the head (split) or buffer id (packed) of a chain in flight',
    does: 'the queue checks each used id against the chains in flight (E_DEVICE_BAD_USED_ID)',
    verdict: (run) => judge(run, ['E_DEVICE_BAD_USED_ID'], [], () => pass('every used id was in flight')),
  },
  {
    what: 'used-len', section: '2.7.8.2, 2.8.21', level: 'MUST',
    clause: 'a used len counts bytes written to the chain, so never more than its device-writable bytes',
    does: 'the queue checks each used len against the chain\'s writable bytes (E_DEVICE_BAD_USED_LEN)',
    verdict: (run) => judge(run, ['E_DEVICE_BAD_USED_LEN'], [], () => pass('every used len within the writable bytes')),
  },
  {
    what: 'used-index', section: '2.7.8', level: 'MUST', only: 'split',
    clause: 'used->idx advances by the elements written, never past what was made available',
    does: 'the queue checks that used->idx never passes the chains in flight (E_DEVICE_USED_INDEX_JUMP)',
    verdict: (run) => judge(run, ['E_DEVICE_USED_INDEX_JUMP'], [], () => pass('used->idx never passed avail->idx')),
  },
  {
    what: 'wrap', section: '2.8.1, 2.8.21', level: 'MUST', only: 'packed',
    clause: 'used descriptors carry AVAIL = USED = the device\'s wrap counter, which flips at each wrap of the ring',
    does: 'the queue checks the flags of each used descriptor (E_DEVICE_BAD_PACKED_FLAGS) over three wraps of the ring',
    verdict: (run) => judge(run, ['E_DEVICE_BAD_PACKED_FLAGS'], [], () => pass(`${Math.floor((run.completed.chains * run.descsPerChain) / run.size)} wraps of the descriptor ring, flags right`)),
  },
  {
    what: 'interrupt', section: '2.7.7.2, 2.8.10', level: 'MUST',
    clause: 'with used-buffer notifications enabled, the device sends one after using a buffer',
    does: 'enables notifications, sends one request and waits (bounded) for its interrupt before looking at the ring',
    verdict: (run) => (!run.interrupts ? na('the queue has no MSI-X vector (polled)')
      : judge(run, [], ['interrupt'], () => pass('the interrupt came'))),
  },
  {
    what: 'suppression', section: '2.7.7.2, 2.8.10', level: 'SHOULD',
    clause: 'with used-buffer notifications suppressed, the device does not send them',
    does: 'suppresses notifications, sends half a ring of requests, polls them and counts interrupts; also counts the driver\'s notifications the device\'s NO_NOTIFY saved',
    verdict: (run) => (!run.interrupts ? na('the queue has no MSI-X vector (polled)')
      : judge(run, [], ['suppressed'], () => {
        const counts = `available-buffer notifications sent ${run.notified} of ${run.kicks} kicks`;
        return run.suppressedInterrupts
          ? fail(`${run.suppressedInterrupts} interrupt(s) while suppressed for ${run.completed.suppressed} chains; ${counts}`)
          : pass(`0 interrupts while suppressed for ${run.completed.suppressed} chains; ${counts}`);
      })),
  },
  {
    what: 'indirect', section: '2.7.5.3, 2.8.19', level: 'MUST', needs: [Feature.INDIRECT_DESC],
    clause: 'with INDIRECT_DESC negotiated, the device serves chains given through an indirect table',
    does: 'sends a ring of requests, each through an indirect table',
    verdict: (run) => (run.error?.phase === 'indirect' ? fail(`${run.error.e.code}: ${run.error.e.message}`)
      : judge(run, [], ['indirect'], () => pass(`${run.completed.indirect} indirect chains`))),
  },
];

/** The virtqueue checks of one layout: vq.split.* or vq.packed.* (the latter needs RING_PACKED offered). */
function queueChecks(layout: Layout): Check[] {
  return SPECS.filter((s) => !s.only || s.only === layout).map((s) => ({
    id: `vq.${layout}.${s.what}`, section: s.section, level: s.level, clause: s.clause, does: s.does,
    needs: { types: TYPES, features: [...(layout === 'packed' ? [Feature.RING_PACKED] : []), ...(s.needs ?? [])] },
    run: async (ctx) => s.verdict(await trafficOf(ctx, layout)),
  }));
}

/** The virtqueue checks, split then packed (virtio 1.2 §2.7, §2.8). */
export const QUEUE_CHECKS: readonly Check[] = [...queueChecks('split'), ...queueChecks('packed')];
