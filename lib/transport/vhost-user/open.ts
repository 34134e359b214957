// The vhost-user: branch of openTransport (lib/open.ts). Options after `?`, e.g.
// vhost-user:/run/blk.sock?type=blk&timeout=2000:
//   type=blk|net   the device the back-end serves (vhost-user does not say; default blk)
//   timeout=MS     bound on the connect and on each reply (default 5000)
//   drain=MS       bound on the wait for a stopped ring's fetched requests (default 5000)
//   arena=MiB      DMA memory shared with the back-end (default 64)
//   queuesize=N    the largest ring offered to the driver (default 1024)
// With shareWith (a migration target), the new connection shares the source's memfd arena, so the
// rings stay in the same memory.

import type { OpenedDevice } from '../../open.js';
import { UsageError } from '../../errors.js';
import type { MemfdArena } from './arena.js';
import { VhostUserTransport } from './transport.js';

const OPTIONS = new Set(['type', 'timeout', 'drain', 'arena', 'queuesize']);

function bad(address: string, message: string): UsageError {
  return new UsageError('E_BAD_ADDRESS', `${address}: ${message}`,
    'vhost-user:/path/to.sock[?type=blk|net&timeout=MS&drain=MS&arena=MiB&queuesize=N]');
}

export async function openVhostUser(spec: string, shareWith?: OpenedDevice): Promise<OpenedDevice> {
  const [path, query = ''] = spec.split('?', 2) as [string, string?];
  const address = `vhost-user:${spec}`;
  const o: Record<string, string> = {};
  for (const pair of query.split('&').filter(Boolean)) {
    const [k, v] = pair.split('=', 2);
    if (!k || v === undefined || !OPTIONS.has(k)) throw bad(address, `unknown option "${pair}" (known: ${[...OPTIONS].join(', ')})`);
    o[k] = decodeURIComponent(v);
  }
  const type = o.type ?? 'blk';
  if (type !== 'blk' && type !== 'net') throw bad(address, `type=${type} must be blk or net`);
  const num = (k: string, min: number, max: number): number | undefined => {
    if (o[k] === undefined) return undefined;
    const n = Number(o[k]);
    if (!Number.isInteger(n) || n < min || n > max) throw bad(address, `${k}=${o[k]} must be an integer from ${min} to ${max}`);
    return n;
  };
  let arena: MemfdArena | undefined;
  if (shareWith) {
    if (!(shareWith.transport instanceof VhostUserTransport)) {
      throw new UsageError('E_BAD_ADDRESS', `${address}: a vhost-user device can only take over from another vhost-user device, not ${shareWith.address}`,
        'migrate between two vhost-user back-ends: the rings live in the memfd arena they share');
    }
    arena = shareWith.transport.dma;
  }
  const arenaMiB = num('arena', 1, 4096);
  const timeout = num('timeout', 1, 600_000);
  const drain = num('drain', 1, 600_000);
  const queueMax = num('queuesize', 1, 32768);
  const transport = await VhostUserTransport.open(address, path, {
    deviceType: type === 'net' ? 1 : 2,
    ...(arena ? { arena } : {}),
    ...(arenaMiB !== undefined ? { arenaBytes: arenaMiB << 20 } : {}),
    ...(timeout !== undefined ? { replyTimeoutMs: timeout } : {}),
    ...(drain !== undefined ? { drainTimeoutMs: drain } : {}),
    ...(queueMax !== undefined ? { queueMaxSize: queueMax } : {}),
  });
  return { address, transport };
}
