// The reference device as a PCI function: identity, capability list, BAR 4, MSI-X, PCI_CFG window.
import t from 'tap';
import { PciConfig, walkCapabilities } from '../../lib/pci/config.js';
import { createSimDevice } from '../../lib/sim/index.js';
import {
  COMMON_CFG_LEN, CommonCfg, PCI_CAP_ID_MSIX, PCI_CAP_ID_VENDOR, PciCapField, PciCapType, Status,
} from '../../lib/spec/index.js';
import { SimDriver, ruleIds } from '../support/sim-driver.js';

t.test('identity: virtio vendor, modern device id, revision 1, class', async (t) => {
  const blk = createSimDevice({ type: 'blk' });
  t.equal(blk.fn.configRead16(PciConfig.VENDOR_ID), 0x1af4);
  t.equal(blk.fn.configRead16(PciConfig.DEVICE_ID), 0x1042);
  t.equal(blk.fn.configRead8(PciConfig.REVISION_ID), 1);
  t.equal(blk.fn.configRead8(PciConfig.CLASS_PROG + 2), 0x01, 'mass storage');
  t.equal(blk.fn.address, 'sim:blk');
  const net = createSimDevice({ type: 'net' });
  t.equal(net.fn.configRead16(PciConfig.DEVICE_ID), 0x1041);
  t.equal(net.fn.configRead8(PciConfig.CLASS_PROG + 2), 0x02, 'network');
});

t.test('capability list is walkable and every virtio structure lies inside BAR 4', async (t) => {
  const sim = createSimDevice({ type: 'blk', queues: 3 });
  const caps = walkCapabilities(sim.fn);
  const types = caps.filter((c) => c.id === PCI_CAP_ID_VENDOR).map((c) => sim.fn.configRead8(c.offset + PciCapField.CFG_TYPE));
  t.same(types, [PciCapType.COMMON, PciCapType.NOTIFY, PciCapType.ISR, PciCapType.DEVICE, PciCapType.PCI_CFG]);
  const bar = sim.fn.bar(4);
  for (const c of caps.filter((c) => c.id === PCI_CAP_ID_VENDOR)) {
    const type = sim.fn.configRead8(c.offset + PciCapField.CFG_TYPE);
    if (type === PciCapType.PCI_CFG) continue;
    t.equal(sim.fn.configRead8(c.offset + PciCapField.BAR), 4, `type ${type} is in BAR 4`);
    const offset = sim.fn.configRead32(c.offset + PciCapField.OFFSET);
    const length = sim.fn.configRead32(c.offset + PciCapField.LENGTH);
    t.ok(length > 0 && offset + length <= bar.size, `type ${type} at ${offset}+${length} fits the BAR`);
  }
  const d = new SimDriver(sim);
  t.equal(d.cap(PciCapType.COMMON).length, COMMON_CFG_LEN);
  t.equal(d.cap(PciCapType.NOTIFY).offset % 4, 0);
  t.equal(sim.fn.configRead32(d.cap(PciCapType.NOTIFY).at + PciCapField.NOTIFY_OFF_MULTIPLIER), 4);
  t.equal(d.cap(PciCapType.NOTIFY).length, 3 * 4, 'one notify dword per queue');
  t.equal(d.cap(PciCapType.DEVICE).length, 36, 'virtio_blk_config');
  const msix = caps.find((c) => c.id === PCI_CAP_ID_MSIX);
  t.ok(msix, 'MSI-X capability present');
  t.equal((sim.fn.configRead16(msix!.offset + 2) & 0x7ff) + 1, 4, 'table size = queues + 1');
  t.equal(sim.fn.msix.tableSize, 4);
  t.equal(sim.fn.configRead32(msix!.offset + 4) & 7, 4, 'table in BAR 4');
});

t.test('only BAR 4 exists; BAR 4 sizes like a 32 KiB 64-bit memory BAR', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  for (const i of [0, 1, 2, 3, 5]) t.throws(() => sim.fn.bar(i), { code: 'E_CAP_MISSING' });
  t.equal(sim.fn.bar(4).size, 0x8000);
  sim.fn.configWrite32(PciConfig.BAR0 + 16, 0xffff_ffff);
  t.equal(sim.fn.configRead32(PciConfig.BAR0 + 16) >>> 0, 0xffff8004);
  sim.fn.configWrite16(PciConfig.VENDOR_ID, 0x1234);
  t.equal(sim.fn.configRead16(PciConfig.VENDOR_ID), 0x1af4, 'read-only fields stay put');
  t.equal(sim.fn.configRead16(PciConfig.VENDOR_ID + 1), 0, 'unaligned access reads 0');
});

t.test('wrong-width and out-of-range register accesses are ignored and read 0', async (t) => {
  const d = new SimDriver(createSimDevice({ type: 'blk' }));
  t.equal(d.r16(CommonCfg.NUM_QUEUES), 1);
  t.equal(d.r32(CommonCfg.NUM_QUEUES), 0, '32-bit read of a 16-bit field');
  t.equal(d.r8(CommonCfg.NUM_QUEUES), 0, '8-bit read of a 16-bit field');
  d.w16(CommonCfg.DEVICE_STATUS, Status.ACKNOWLEDGE);
  t.equal(d.status, 0, '16-bit write to the 8-bit status is ignored');
  t.equal(d.bar.read32(0x10000), 0, 'beyond the BAR');
  t.equal(d.config32(0), 2048, 'capacity low half');
  t.equal(d.config32(4), 0, 'capacity high half');
  t.equal(d.config16(0), 0, 'a 16-bit read of the 64-bit capacity reads 0');
  t.same(ruleIds(d.sim), ['register-access-invalid', 'config-access-invalid'], 'recorded (§4.1.3.1)');
});

t.test('the PCI_CFG capability is a window onto BAR 4', async (t) => {
  const sim = createSimDevice({ type: 'blk' });
  const d = new SimDriver(sim);
  const at = d.cap(PciCapType.PCI_CFG).at;
  sim.fn.configWrite8(at + PciCapField.BAR, 4);
  sim.fn.configWrite32(at + PciCapField.LENGTH, 2);
  sim.fn.configWrite32(at + PciCapField.OFFSET, d.cap(PciCapType.COMMON).offset + CommonCfg.NUM_QUEUES);
  t.equal(sim.fn.configRead16(at + 16), 1, 'num_queues read through pci_cfg_data');
  sim.fn.configWrite32(at + PciCapField.LENGTH, 1);
  sim.fn.configWrite32(at + PciCapField.OFFSET, d.cap(PciCapType.COMMON).offset + CommonCfg.DEVICE_STATUS);
  sim.fn.configWrite8(at + 16, Status.ACKNOWLEDGE);
  t.equal(d.status, Status.ACKNOWLEDGE, 'status written through pci_cfg_data');
});

t.test('MSI-X: enable returns what the table has; masked vectors wait in the PBA', async (t) => {
  const sim = createSimDevice({ type: 'blk', msixVectors: 2 });
  const got: number[] = [];
  t.equal(sim.fn.msix.enable(8, (v) => got.push(v)), 2);
  sim.fn.msix.signal(1);
  t.same(got, [], 'not delivered synchronously');
  await Promise.resolve();
  t.same(got, [1]);
  const bar = sim.fn.bar(4);
  bar.write32(0x4000 + 16 + 12, 1); // mask vector 1
  sim.fn.msix.signal(1);
  await Promise.resolve();
  t.same(got, [1], 'masked');
  t.equal(bar.read32(0x6000), 2, 'pending bit 1');
  bar.write32(0x4000 + 16 + 12, 0);
  await Promise.resolve();
  t.same(got, [1, 1], 'delivered on unmask');
  t.equal(bar.read32(0x6000), 0);
  sim.fn.msix.disable();
  sim.fn.msix.signal(0);
  await Promise.resolve();
  t.same(got, [1, 1], 'nothing once disabled');
  sim.fn.close();
  sim.fn.close();
  t.equal(bar.read16(0x12), 0, 'closed function reads 0');
});
