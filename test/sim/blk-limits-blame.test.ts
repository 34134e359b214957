// Whose limit stops a blk request from carrying one block (drivers/blk/limits.ts): a device whose own
// seg_max × size_max (virtio 1.2 §5.2.4) is below its block size can serve no driver, so opening it is
// the device's E_CAP_INVALID (CLI exit 3); a maxTransfer or queue size of the caller's that is too
// small is the caller's E_INVALID_ARGUMENT, with the values that work in the hint. Before, both were
// E_INVALID_ARGUMENT (breaker 30b: a back-end's size_max blamed on the caller).

import t from 'tap';
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';
import { DeviceError, UsageError, type UvirtioError } from '../../lib/errors.js';

async function openError(address: string, options: Parameters<typeof BlkDriver.open>[1] = {}): Promise<UvirtioError | null> {
  const opened = await openTransport(address);
  try {
    const blk = await BlkDriver.open(opened.transport, options);
    await blk.close();
    return null;
  } catch (e) {
    opened.transport.close();
    return e as UvirtioError;
  }
}

t.test("the device's seg_max × size_max below its block size: E_CAP_INVALID, the device's fault", async (t) => {
  const e = await openError('sim:blk?blksize=4096&segmax=1&sizemax=512');
  t.ok(e instanceof DeviceError, 'a DeviceError');
  t.equal(e?.code, 'E_CAP_INVALID');
  t.match(e?.message, /seg_max 1, size_max 512/);
  t.match(e?.hint, /fix the device/);
});

t.test("the caller's maxTransfer below the block size: E_INVALID_ARGUMENT naming the value that works", async (t) => {
  const e = await openError('sim:blk?blksize=4096', { maxTransfer: 512 });
  t.ok(e instanceof UsageError, 'a UsageError');
  t.equal(e?.code, 'E_INVALID_ARGUMENT');
  t.match(e?.hint, /maxTransfer to at least 4096/);
});

t.test("the caller's queue too small for the block's segments: E_INVALID_ARGUMENT naming the queue size that works", async (t) => {
  const e = await openError('sim:blk?blksize=4096&sizemax=512', { queueSize: 4 });
  t.equal(e?.code, 'E_INVALID_ARGUMENT');
  t.match(e?.hint, /queue size to at least 10/, '8 segments of 512 bytes, a header and a status');
  t.equal(await openError('sim:blk?blksize=4096&sizemax=512', { queueSize: 16 }), null, 'a queue of 16 opens');
});
