// Device addresses, as the CLI and openDevice() take them (ARCHITECTURE.md "Addressing a device"):
//   vfio:0000:00:02.0   or a bare BDF (0000:00:02.0, 00:02.0)
//   vhost-user:/run/vhost.sock
//   sim:blk  sim:net  sim:rng  with options: sim:blk?layout=packed&queues=4
// Parsing only; opening is lib/open.ts.

import { UsageError } from './errors.js';
import { normaliseBdf } from './pci/bdf.js';

export { normaliseBdf };

export type DeviceAddress =
  | { kind: 'vfio'; bdf: string }
  | { kind: 'vhost-user'; path: string }
  | { kind: 'sim'; type: 'blk' | 'net' | 'rng'; options: Record<string, string> };

function bad(text: string, why: string): UsageError {
  return new UsageError('E_BAD_ADDRESS', `"${text}" is not a device address: ${why}`,
    'use vfio:0000:00:02.0 (or a bare BDF), vhost-user:/path/to.sock, sim:blk, sim:net or sim:rng');
}

export function parseAddress(text: string): DeviceAddress {
  if (typeof text !== 'string' || text.trim() === '') throw bad(String(text), 'it is empty');
  const s = text.trim();
  if (s.startsWith('vfio:')) {
    const bdf = normaliseBdf(s.slice(5));
    if (!bdf) throw bad(s, `"${s.slice(5)}" is not a PCI address (domain:bus:device.function)`);
    return { kind: 'vfio', bdf };
  }
  if (s.startsWith('vhost-user:')) {
    const path = s.slice('vhost-user:'.length);
    if (!path.startsWith('/') && !path.startsWith('.')) throw bad(s, 'the socket path must be absolute or start with ./');
    return { kind: 'vhost-user', path };
  }
  if (s.startsWith('sim:')) {
    const [type, query = ''] = s.slice(4).split('?', 2) as [string, string?];
    if (type !== 'blk' && type !== 'net' && type !== 'rng') throw bad(s, `the reference device models blk, net and rng, not "${type}"`);
    const options: Record<string, string> = {};
    for (const pair of query.split('&').filter(Boolean)) {
      const [k, v] = pair.split('=', 2);
      if (!k || v === undefined || v === '') throw bad(s, `option "${pair}" is not key=value`);
      options[decodeURIComponent(k)] = decodeURIComponent(v);
    }
    return { kind: 'sim', type, options };
  }
  const bdf = normaliseBdf(s);
  if (bdf) return { kind: 'vfio', bdf };
  throw bad(s, 'unknown scheme');
}

export function formatAddress(a: DeviceAddress): string {
  switch (a.kind) {
    case 'vfio': return `vfio:${a.bdf}`;
    case 'vhost-user': return `vhost-user:${a.path}`;
    case 'sim': {
      const q = new URLSearchParams(a.options).toString();
      return `sim:${a.type}${q ? `?${q}` : ''}`;
    }
  }
}
