// `uvirtio check` against the reference device's fault catalogue (lib/sim/virtio/faults.ts): for
// each fault kind, injected at the check whose clause it breaks, that check fails (or warns, for a
// SHOULD) and no other check does. Table-driven over FAULT_KINDS: a new fault without a row here
// fails the first test.

import t from 'tap';
import { FAULT_KINDS, type FaultKind, type SimFault } from '../../lib/sim/index.js';
import { checkSim, notPassed, type Injection } from '../support/check-run.js';

interface Row extends Injection {
  address?: string;
  /** The checks that must not pass, with their result. */
  expect: Record<string, 'fail' | 'warn'>;
}

const at = (kind: FaultKind, check: string, expect: Row['expect'], more: Partial<Row> & { fault?: Partial<SimFault> } = {}): Row =>
  ({ ...more, at: check, expect, fault: { kind, ...more.fault } });

const ROWS: readonly Row[] = [
  at('bad-used-id', 'vq.split.chains', { 'vq.split.used-id': 'fail' }),
  at('used-len-overflow', 'vq.split.chains', { 'vq.split.used-len': 'fail' }),
  at('used-index-jump', 'vq.split.chains', { 'vq.split.used-index': 'fail' }),
  at('bad-packed-flags', 'vq.packed.chains', { 'vq.packed.wrap': 'fail' }),
  at('used-len-short', 'blk.read', { 'blk.read': 'fail' }),
  at('bad-blk-status', 'blk.read', { 'blk.read': 'fail' }),
  at('needs-reset', 'status.needs-reset', { 'status.needs-reset': 'warn' }, { live: true }),
  at('interrupt-storm', 'vq.split.chains', { 'vq.split.suppression': 'warn' }, { live: true }),
  at('reset-stuck', 'status.reset-reads-zero', { 'status.reset-reads-zero': 'fail' }),
  at('stop-stuck', 'state.stop-shows', { 'state.stop-shows': 'fail' }),
  at('stop-stuck', 'state.suspend', { 'state.suspend': 'fail' }),
  at('config-churn', 'pci.config-generation', { 'pci.config-generation': 'warn' }),
  at('interrupt-silence', 'vq.packed.chains', { 'vq.packed.interrupt': 'fail' }),
  // The frame was used and no interrupt came: the device's doing, not its network's (no 'may hold').
  at('interrupt-silence', 'vq.split.chains', { 'vq.split.interrupt': 'fail' }, { address: 'sim:net' }),
  at('completion-silence', 'vq.split.chains', { 'vq.split.chains': 'fail' }),
  // A NIC may hold transmitted frames (its network is busy): a warning there, not a failure.
  at('completion-silence', 'vq.split.chains', { 'vq.split.chains': 'warn' }, { address: 'sim:net' }),
  at('state-lie', 'state.vq-state', { 'state.vq-state': 'fail' }),
  // A request held at the stop (mode=hold, latency) makes device state to SAVE.
  at('device-state-refuse', 'state.restore', { 'state.restore': 'fail' }, { address: 'sim:blk?mode=hold&latency=20' }),
  at('features-refuse', 'status.features-ok-subset', { 'status.features-ok-subset': 'warn' }),
  at('features-accept-any', 'status.features-ok-unoffered', { 'status.features-ok-unoffered': 'fail' }),
  at('reserved-feature', 'features.no-reserved', { 'features.no-reserved': 'warn' }),
  // §4.1.4.3.1 requires a 0 on reset only: a lost read-back of 1 is a warning, not a failed MUST.
  at('queue-enable-lost', 'pci.queue-enable', { 'pci.queue-enable': 'warn' }),
  at('msix-vector-lost', 'pci.msix-vector', { 'pci.msix-vector': 'fail' }),
  at('interrupt-after-stop', 'state.quiet-after-stop', { 'state.quiet-after-stop': 'fail' }),
];

t.test('every fault kind of the catalogue has a row', async (t) => {
  const covered = new Set(ROWS.map((r) => r.fault.kind));
  t.same(FAULT_KINDS.filter((k) => !covered.has(k)), [], 'fault kinds no check is shown to catch');
});

for (const row of ROWS) {
  t.test(`${row.fault.kind} at ${row.at}: ${Object.keys(row.expect).join(', ')} and nothing else`, async (t) => {
    const report = await checkSim(row.address ?? 'sim:blk', row);
    const expect = Object.fromEntries(Object.entries(row.expect).map(([id, result]) => [id, result]));
    const got = Object.fromEntries(Object.entries(notPassed(report)).map(([id, text]) => [id, text.split(':')[0]]));
    t.same(got, expect, JSON.stringify(notPassed(report)));
  });
}
