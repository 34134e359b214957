// VM tier, vdpa profile: the `uvirtio` command on vhost-vdpa: addresses (test/vm/guest/vdpa-cli.ts)
// — list, info, rehearse, a session moved to a second device — and the typed errors of hostile
// input: paths and fds that are not vhost-vdpa devices, a device held by another opener, a driver
// of the wrong type, IOTLB messages the device refuses, a call after close.
import fs from 'node:fs';
import t from 'tap';
import { resultsOf, runInVm, vmUnavailable, type GuestResult } from './vm-run.js';
import { prerequisite } from '../support/prerequisite.js';

const why = vmUnavailable();
t.test('uvirtio on vhost-vdpa: devices, and hostile input (Linux 6.12)', prerequisite(why), async (t) => {
  const run = await runInVm('vdpa', 'node dist/test/vm/guest/vdpa-cli.js', { timeoutSec: 600 });
  t.comment(`VM run ${(run.ms / 1000).toFixed(1)} s; guest command started ${run.guestRunAt ?? '?'} s after boot`);
  t.teardown(() => fs.rmSync(run.workDir, { recursive: true, force: true }));
  if (run.status !== 0) t.comment(run.output + run.stderr);
  t.equal(run.status, 0, 'the guest program exits 0');
  t.same(resultsOf(run, 'fatal'), [], 'no fatal error in the guest');
  t.equal(resultsOf(run, 'done').length, 1, 'the guest program ran to the end');
  const cli = (name: string): GuestResult | undefined => resultsOf(run, 'cli').find((r) => r.name === name);
  const json = (name: string): Record<string, unknown> => (cli(name)?.json ?? {}) as Record<string, unknown>;

  t.test('list, info', async (t) => {
    const listed = ((cli('list')?.json ?? []) as Record<string, unknown>[]).filter((d) => d.transport === 'vhost-vdpa');
    t.same(listed.map((d) => [d.path, d.name, d.virtioType, d.queues, d.usable]), [
      ['/dev/vhost-vdpa-0', 'blk0', 2, 1, true], ['/dev/vhost-vdpa-1', 'blk1', 2, 1, true],
      ['/dev/vhost-vdpa-2', 'net0', 1, 3, true], ['/dev/vhost-vdpa-3', 'net1', 1, 3, true],
    ], 'list --json: each /dev/vhost-vdpa-N with its vdpa name, virtio type and queue count');
    t.match(cli('list-text')?.stdout, /vhost-vdpa:\/dev\/vhost-vdpa-0 {2}virtio-blk {2}vdpa blk0 {2}queues 1 {2}usable/, 'list: one line per device');
    t.match(json('info-blk'), { type: 'blk', queues: [{ index: 0, maxSize: 256 }], config: { capacitySectors: 262144 }, mechanisms: ['backend', 'quiesce'] },
      'info on vdpa_sim_blk: 256-entry queue, 128 MiB, mechanisms backend then quiesce');
    t.match(json('info-net'), { type: 'net', config: { mac: '52:54:00:56:00:01' }, mechanisms: ['backend', 'quiesce'] }, 'info on vdpa_sim_net: its MAC from the configuration');
  });

  t.test('rehearse and a session', async (t) => {
    const clean = { lost: 0, duplicated: 0, corrupted: 0 };
    t.match(json('rehearse-blk'), { ok: true, mechanism: 'backend', cycles: 5, requests: clean }, 'rehearse on blk0: 5 stop/reinit cycles, every request exactly once');
    t.match(json('rehearse-net-to'), { ok: true, mechanism: 'backend', cycles: 4, requests: clean }, 'rehearse net0 ⇄ net1: every frame exactly once');
    t.match(json('rehearse-to-sim'), { ok: false, error: { code: 'E_BAD_ADDRESS' } }, 'rehearse from vhost-vdpa to sim: refused, E_BAD_ADDRESS');
    for (const [suffix, to] of [['', /vhost-vdpa-3$/], ['-blk', /vhost-vdpa-0$/]] as const) {
      t.equal(cli(`attach${suffix}`)?.status, 0, `attach${suffix}`);
      t.match(json(`stop${suffix}`), { phase: 'stopped', mechanism: 'backend' }, `stop${suffix}: the backend mechanism`);
      t.match(json(`snapshot${suffix}`), { mechanism: 'backend' }, `snapshot${suffix} written`);
      t.match(json(`reinit${suffix}`), { phase: 'live', driving: to }, `reinit${suffix}: live on ${String(to)}`);
      t.match(json(`detach${suffix}`), { verdict: clean }, `detach${suffix} --verify: nothing lost, duplicated or corrupted`);
    }
  });

  t.test('hostile input gets typed errors', async (t) => {
    t.match(json('info-null'), { ok: false, error: { code: 'E_NOT_VIRTIO', hint: /vhost-vdpa/ } }, 'info vhost-vdpa:/dev/null: E_NOT_VIRTIO (checked before opening)');
    t.match(json('info-missing'), { ok: false, error: { code: 'E_NO_DEVICE' } }, 'a missing /dev/vhost-vdpa-99: E_NO_DEVICE');
    t.match(json('info-relative'), { ok: false, error: { code: 'E_BAD_ADDRESS' } }, 'a relative path: E_BAD_ADDRESS');
    t.match(json('info-option'), { ok: false, error: { code: 'E_BAD_ADDRESS', message: /unknown option "queues"/ } }, 'an unknown option: E_BAD_ADDRESS');
    const one = (check: string): GuestResult | undefined => resultsOf(run, check)[0];
    for (const [check, code] of [['path-regular-file', 'E_NOT_VIRTIO'], ['path-directory', 'E_NOT_VIRTIO'], ['path-other-chardev', 'E_NOT_VIRTIO'],
      ['fd-not-open', 'E_INVALID_ARGUMENT'], ['fd-not-vdpa', 'E_NOT_VIRTIO'], ['fd-negative', 'E_INVALID_ARGUMENT'], ['in-use', 'E_DEVICE_IN_USE'],
      ['blk-on-net', 'E_NOT_VIRTIO'], ['net-on-blk', 'E_NOT_VIRTIO'], ['iotlb-overlap', 'E_VDPA_IOTLB'], ['iotlb-empty', 'E_VDPA_IOTLB'],
      ['after-close', 'E_CLOSED']] as const) {
      t.match(one(check), { threw: true, code }, `${check}: ${code}`);
    }
    t.match(one('adopted'), { deviceType: 2, numQueues: 1 }, 'an fd opened elsewhere (and already owned) is adopted');
  });
});
