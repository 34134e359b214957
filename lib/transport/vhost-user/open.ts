// The vhost-user: opener (registered in lib/schemes.ts, loaded on first use): a front-end over the
// back-end's UNIX socket. Options after `?`, e.g. vhost-user:/run/blk.sock?type=blk&timeout=2000:
//   type=blk|net   the device the back-end serves (vhost-user does not say; default blk)
//   timeout=MS     bound on the connect and on each reply (default 5000)
//   drain=MS       bound on the wait for a stopped ring's fetched requests (default 5000)
//   arena=MiB      DMA memory shared with the back-end (default 64)
//   queuesize=N    the largest ring offered to the driver (default 1024)
// With shareWith (a migration target), the new connection shares the source's memfd arena, so the
// rings stay in the same memory. The caller's bound on the open (openTransport's timeoutMs) bounds
// the connect and the handshake when it is the smaller.

import { DeviceType } from '../../spec/index.js';
import { badAddress, choice, int, parseOptions } from '../../util/options.js';
import type { MemfdArena } from './arena.js';
import { VhostUserTransport } from './transport.js';

const OPTIONS = {
  type: choice('blk', 'net'), timeout: int(1, 600_000), drain: int(1, 600_000), arena: int(1, 4096), queuesize: int(1, 32768),
};
const HINT = 'vhost-user:/path/to.sock[?type=blk|net&timeout=MS&drain=MS&arena=MiB&queuesize=N]';

/**
 * Connects to the back-end at `a.target` (the socket path). Throws E_BAD_ADDRESS (UsageError) for
 * an unknown option, a value that does not fit, or a `shareWith` that is not a vhost-user device;
 * VhostUserTransport.open's errors otherwise.
 */
export async function open(
  a: { address: string; target: string; options: Readonly<Record<string, string>>; timeoutMs?: number }, shareWith?: { address: string; transport: unknown },
): Promise<{ address: string; transport: VhostUserTransport }> {
  const o = parseOptions(a.options, OPTIONS, { address: a.address, hint: HINT });
  let arena: MemfdArena | undefined;
  if (shareWith) {
    if (!(shareWith.transport instanceof VhostUserTransport)) {
      throw badAddress(a.address, `a vhost-user device can only take over from another vhost-user device, not ${shareWith.address}`,
        'migrate between two vhost-user back-ends: the rings live in the memfd arena they share');
    }
    arena = shareWith.transport.dma;
  }
  const transport = await VhostUserTransport.open(a.address, a.target, {
    deviceType: o.type === 'net' ? DeviceType.NET : DeviceType.BLK,
    ...(arena ? { arena } : {}),
    ...(o.arena !== undefined ? { arenaBytes: o.arena * 2 ** 20 } : {}),
    ...(o.timeout !== undefined ? { replyTimeoutMs: o.timeout } : {}),
    ...(a.timeoutMs !== undefined ? { openTimeoutMs: a.timeoutMs } : {}),
    ...(o.drain !== undefined ? { drainTimeoutMs: o.drain } : {}),
    ...(o.queuesize !== undefined ? { queueMaxSize: o.queuesize } : {}),
  });
  return { address: a.address, transport };
}
