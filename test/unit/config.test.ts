// DeviceConfig (lib/virtio/config.ts): the device configuration as drivers read it — widths
// checked against the bytes the device exposes, 64-bit fields and byte ranges inside one
// config_generation (virtio 1.2 §2.5.1), writes refused clearly where a transport has none.

import t from 'tap';
import { DeviceConfig } from '../../lib/virtio/config.js';
import type { ConfigWidth, VirtioTransport } from '../../lib/transport/types.js';
import { codeOf } from '../support/codes.js';

/** A transport with only what DeviceConfig uses: raw little-endian reads of `bytes`, a generation. */
function rawTransport(bytes: Uint8Array, opts: { writable?: boolean; onRead?: () => void; generation?: () => number } = {}): VirtioTransport & { writes: [number, number, number][] } {
  const writes: [number, number, number][] = [];
  const view = new DataView(bytes.buffer);
  const t = {
    address: 'fake:cfg', configLength: bytes.length, writes,
    readConfig(offset: number, width: ConfigWidth): number {
      opts.onRead?.();
      return width === 1 ? view.getUint8(offset) : width === 2 ? view.getUint16(offset, true) : view.getUint32(offset, true);
    },
    configGeneration: opts.generation ?? (() => 0),
    ...(opts.writable ? { writeConfig: (o: number, w: ConfigWidth, v: number) => void writes.push([o, w, v]) } : {}),
  };
  return t as unknown as VirtioTransport & { writes: [number, number, number][] };
}

t.test('reads of every width, little-endian; 64 bits as two halves', async (t) => {
  const bytes = new Uint8Array(16);
  new DataView(bytes.buffer).setBigUint64(0, 0x1122334455667788n, true);
  new DataView(bytes.buffer).setUint32(8, 0xfffffffe, true);
  const cfg = new DeviceConfig(() => rawTransport(bytes));
  t.equal(cfg.read64(0), 0x1122334455667788n);
  t.equal(cfg.read32(8), 0xfffffffe, 'unsigned');
  t.equal(cfg.read16(0), 0x7788);
  t.equal(cfg.read8(1), 0x77);
  t.same([...cfg.readBytes(0, 3)], [0x88, 0x77, 0x66]);
  t.equal(cfg.length, 16);
});

t.test('accesses outside the configuration are refused before the transport is asked', async (t) => {
  let reads = 0;
  const cfg = new DeviceConfig(() => rawTransport(new Uint8Array(8), { onRead: () => reads++ }));
  t.equal(codeOf(() => cfg.read64(4)), 'E_INVALID_ARGUMENT');
  t.equal(codeOf(() => cfg.read32(-1)), 'E_INVALID_ARGUMENT');
  t.equal(codeOf(() => cfg.readBytes(6, 3)), 'E_INVALID_ARGUMENT');
  t.equal(codeOf(() => cfg.read8(1.5)), 'E_INVALID_ARGUMENT');
  t.equal(reads, 0);
});

t.test('a read is retried until config_generation holds still; a generation that never does is E_CONFIG_UNSTABLE', async (t) => {
  const bytes = new Uint8Array(8);
  let gen = 0;
  let reads = 0;
  // The generation moves during the first two reads only.
  const moving = new DeviceConfig(() => rawTransport(bytes, { onRead: () => { if (++reads <= 4) gen++; }, generation: () => gen }));
  t.equal(moving.read64(0), 0n);
  t.ok(reads > 2, 'read again after the generation changed');
  let g = 0;
  const never = new DeviceConfig(() => rawTransport(bytes, { generation: () => g++ }));
  t.equal(codeOf(() => never.read16(0)), 'E_CONFIG_UNSTABLE');
});

t.test('writes: checked and passed on; refused with E_UNSUPPORTED where the transport has none', async (t) => {
  const w = rawTransport(new Uint8Array(8), { writable: true });
  const cfg = new DeviceConfig(() => w);
  cfg.write16(2, 0xbeef);
  cfg.write8(0, 1);
  t.same(w.writes, [[2, 2, 0xbeef], [0, 1, 1]]);
  t.equal(codeOf(() => cfg.write8(0, 256)), 'E_INVALID_ARGUMENT', 'a value wider than the field');
  t.equal(codeOf(() => cfg.write32(6, 0)), 'E_INVALID_ARGUMENT', 'beyond the configuration');
  const readOnly = new DeviceConfig(() => rawTransport(new Uint8Array(8)));
  t.equal(codeOf(() => readOnly.write32(0, 1)), 'E_UNSUPPORTED');
});

t.test('the view follows the transport it is given each time (a reinit onto another device)', async (t) => {
  const a = new Uint8Array([1, 0]);
  const b = new Uint8Array([2, 0]);
  let current = rawTransport(a);
  const cfg = new DeviceConfig(() => current);
  t.equal(cfg.read16(0), 1);
  current = rawTransport(b);
  t.equal(cfg.read16(0), 2);
});
