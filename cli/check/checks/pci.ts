// The virtio-pci transport (virtio 1.2 §4.1): capability layout, notification area, queue_size,
// queue_enable, MSI-X vector read-back and config_generation — read through the function's own
// capability walk (lib/transport/pci/caps.ts), on sim: and vfio: devices only.

import { CommonCfg, Feature, VIRTIO_MSI_NO_VECTOR, hasFeature } from '../../../lib/spec/index.js';
import { discoverVirtioPci, type VirtioPciLayout } from '../../../lib/transport/pci/caps.js';
import { fail, na, pass, warn, type Check, type CheckContext } from '../types.js';

/** The layout (the walk throws E_CAP_MISSING / E_CAP_INVALID for a bad one: the check fails with it). */
function layoutOf(ctx: CheckContext): VirtioPciLayout {
  return discoverVirtioPci(ctx.pci!.fn);
}

/** Raw 16-bit access to a common configuration register of queue `q` (queue_select first). */
function queueReg(l: VirtioPciLayout, q: number, reg: number): { read(): number; write(v: number): void } {
  const { window: w, offset } = l.common;
  return {
    read: () => (w.write16(offset + CommonCfg.QUEUE_SELECT, q), w.read16(offset + reg)),
    write: (v) => (w.write16(offset + CommonCfg.QUEUE_SELECT, q), w.write16(offset + reg, v)),
  };
}

const isPowerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
const queues = (ctx: CheckContext): number[] => Array.from({ length: ctx.t.numQueues }, (_, q) => q);

/** virtio-pci transport checks (virtio 1.2 §4.1); n/a on other transports. */
export const PCI_CHECKS: readonly Check[] = [
  {
    id: 'pci.capabilities', section: '4.1.4', level: 'MUST', needs: { pci: true },
    clause: 'the function has the common, notification and ISR capabilities (and device configuration when it has any), each inside a BAR',
    does: 'walks the vendor capabilities and reports where each structure is',
    async run(ctx) {
      const l = layoutOf(ctx);
      const at = (name: string, r: { bar: number; offset: number; length: number }): string => `${name} BAR${r.bar}+0x${r.offset.toString(16)}/${r.length}`;
      return pass([at('common', l.common), at('notify', l.notify), at('isr', l.isr), ...(l.device ? [at('device', l.device)] : [])].join(', '));
    },
  },
  {
    id: 'pci.notify-area', section: '4.1.4.4', level: 'MUST', needs: { pci: true },
    clause: 'notify_off_multiplier is 0 or an even power of 2, the area is 2-byte aligned, and every queue\'s notify address lies inside it',
    does: 'reads notify_off_multiplier and each queue\'s queue_notify_off',
    async run(ctx) {
      const l = layoutOf(ctx);
      const { multiplier: m, offset, length } = l.notify;
      if (m !== 0 && !(isPowerOfTwo(m) && m >= 2)) return fail(`notify_off_multiplier ${m} is neither 0 nor an even power of 2`);
      if (offset % 2) return fail(`notification area offset 0x${offset.toString(16)} is not 2-byte aligned`);
      for (const q of queues(ctx)) {
        const off = queueReg(l, q, CommonCfg.QUEUE_NOTIFY_OFF).read();
        if (off * m + 2 > length) return fail(`queue ${q}: queue_notify_off ${off} × ${m} + 2 exceeds the ${length}-byte area`);
      }
      return pass(`multiplier ${m}, ${length} bytes, ${ctx.t.numQueues} queue(s) inside`);
    },
  },
  {
    id: 'pci.queue-size', section: '4.1.4.3.1', level: 'MUST', needs: { pci: true },
    clause: 'without RING_PACKED negotiated, queue_size reads 0 or a power of 2 (at most 32768); with it, at most 32768',
    does: 'reads queue_size of every queue after a reset, and again with RING_PACKED negotiated when offered',
    async run(ctx) {
      const l = layoutOf(ctx);
      const sizes = (): number[] => queues(ctx).map((q) => queueReg(l, q, CommonCfg.QUEUE_SIZE).read());
      const split = sizes();
      const bad = split.findIndex((s) => s !== 0 && !(isPowerOfTwo(s) && s <= 32768));
      if (bad >= 0) return fail(`queue ${bad}: queue_size ${split[bad]} is not a power of 2 (no RING_PACKED negotiated)`);
      if (!hasFeature(ctx.offered, Feature.RING_PACKED)) return pass(`sizes ${split.join(', ')}`);
      await ctx.open({ features: { layout: 'packed' }, interrupts: 'poll', stateFeatures: false });
      const packed = sizes();
      const big = packed.findIndex((s) => s > 32768);
      return big >= 0 ? fail(`queue ${big}: queue_size ${packed[big]} exceeds 32768 (RING_PACKED negotiated)`)
        : pass(`sizes ${split.join(', ')}; packed ${packed.join(', ')}`);
    },
  },
  {
    id: 'pci.queue-enable', section: '4.1.4.3.1', level: 'MUST', needs: { pci: true },
    clause: 'queue_enable reads 0 after a reset (reading back 1 once the driver enabled the queue is expected, not required: a warning)',
    does: 'reads queue_enable of every queue after a reset, then sets up queue 0, enables it and reads it back',
    async run(ctx) {
      const l = layoutOf(ctx);
      const on = queues(ctx).filter((q) => queueReg(l, q, CommonCfg.QUEUE_ENABLE).read() !== 0);
      if (on.length) return fail(`queue_enable reads non-zero after a reset on queue(s) ${on.join(', ')}`);
      const d = await ctx.open({ interrupts: 'poll', stateFeatures: false });
      d.setupQueue(0, { size: Math.min(8, ctx.t.queueMaxSize(0)) });
      const readBack = queueReg(l, 0, CommonCfg.QUEUE_ENABLE).read();
      // §4.1.4.3.1 requires only the 0 on reset; the read-back is the register's description, which drivers (Linux) rely on.
      return readBack === 1 ? pass('0 after reset, 1 after enable') : warn(`queue 0: queue_enable read ${readBack} after the driver wrote 1 (not a MUST of §4.1.4.3.1, but drivers read it)`);
    },
  },
  {
    id: 'pci.msix-vector', section: '4.1.5.1.2', level: 'MUST', needs: { pci: true },
    clause: 'config_msix_vector and queue_msix_vector read back the vector written (or NO_VECTOR), and read NO_VECTOR after a reset',
    does: 'enables MSI-X, writes vectors 0 and 1 and NO_VECTOR to config and queue 0 and reads each back, resets and reads both',
    async run(ctx) {
      const t = ctx.pci!;
      if (t.fn.msix.tableSize < 2) return na(`the MSI-X table has ${t.fn.msix.tableSize} vector(s), 2 needed`);
      const l = layoutOf(ctx);
      const { window: w, offset } = l.common;
      const config = { read: () => w.read16(offset + CommonCfg.CONFIG_MSIX_VECTOR), write: (v: number) => w.write16(offset + CommonCfg.CONFIG_MSIX_VECTOR, v) };
      const queue = queueReg(l, 0, CommonCfg.QUEUE_MSIX_VECTOR);
      const after = [config.read(), queue.read()];
      if (after.some((v) => v !== VIRTIO_MSI_NO_VECTOR)) return fail(`after a reset config/queue 0 vectors read ${after.join('/')}, not NO_VECTOR (0xffff)`);
      if (t.enableInterrupts(2, () => undefined) < 2) return na('the platform gave fewer than 2 MSI-X vectors');
      ctx.defer(() => t.disableInterrupts());
      for (const [name, reg, v] of [['config', config, 0], ['queue 0', queue, 1], ['config', config, VIRTIO_MSI_NO_VECTOR], ['queue 0', queue, VIRTIO_MSI_NO_VECTOR]] as const) {
        reg.write(v);
        const got = reg.read();
        // A device may refuse a vector by reading NO_VECTOR (§4.1.5.1.2): legal, but then vectors cannot be checked.
        if (got === VIRTIO_MSI_NO_VECTOR && v !== VIRTIO_MSI_NO_VECTOR) return warn(`${name}: vector ${v} refused (reads NO_VECTOR)`);
        if (got !== v) return fail(`${name}: wrote vector ${v}, read back ${got}`);
      }
      config.write(0);
      queue.write(1);
      await ctx.t.reset(ctx.timeoutMs);
      const reset = [config.read(), queue.read()];
      if (reset.some((v) => v !== VIRTIO_MSI_NO_VECTOR)) return fail(`after a reset config/queue 0 vectors read ${reset.join('/')}, not NO_VECTOR`);
      return pass('read back 0, 1 and NO_VECTOR; NO_VECTOR after reset');
    },
  },
  {
    id: 'pci.config-generation', section: '2.5.1, 4.1.4.3.1', level: 'SHOULD',
    clause: 'config_generation stays the same while the device configuration does not change, so that a driver\'s read settles',
    does: 'reads config_generation, the whole device configuration and config_generation again, three times',
    needs: { pci: true },
    async run(ctx) {
      const t = ctx.t;
      for (let i = 0; i < 3; i++) {
        const before = t.configGeneration();
        for (let off = 0; off + 4 <= t.configLength; off += 4) t.readConfig(off, 4);
        const after = t.configGeneration();
        if (before === after) return pass(`stable at ${after} across a ${t.configLength}-byte read`);
      }
      return fail('config_generation changed across each of 3 reads of an unchanging configuration');
    },
  },
];
