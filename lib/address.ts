// Device addresses, as the CLI and openTransport() take them (docs/architecture.md#addressing-a-device),
// all one shape — SCHEME:TARGET[?KEY=VALUE&…]:
//   vfio:0000:00:02.0                  or a bare BDF (0000:00:02.0, 00:02.0)
//   vhost-user:/run/vhost.sock?type=net
//   sim:blk?layout=packed&queues=4     sim:NAME for each device type in lib/sim/models/index.ts
// This file is the one parser: it checks the scheme and its target and splits the options into
// key → text, with the schemes of lib/schemes.ts. What the options mean is each opener's business
// (they read options with lib/util/options.ts).

import { UsageError } from './errors.js';
import { shown } from './util/shown.js';
import { normaliseBdf } from './pci/bdf.js';
import { SCHEMES, type Scheme, type SchemeEntry } from './schemes.js';

export { normaliseBdf };
export type { Scheme };

/** A parsed device address: parseAddress('sim:blk?queues=4') is { scheme: 'sim', target: 'blk', options: { queues: '4' } }. */
export interface DeviceAddress {
  /** Which transport opens it (lib/open.ts). */
  scheme: Scheme;
  /** The normal form of what the scheme addresses: a BDF (vfio), a socket path (vhost-user), a device type (sim). */
  target: string;
  /** The options after `?`, decoded, as text; the opener checks them (lib/util/options.ts). */
  options: Record<string, string>;
}

function isScheme(s: string): s is Scheme {
  return Object.hasOwn(SCHEMES, s);
}

function bad(text: string, why: string): UsageError {
  return new UsageError('E_BAD_ADDRESS', `"${text}" is not a device address: ${why}`,
    `use ${Object.values(SCHEMES).map((s: SchemeEntry) => s.examples()).join('; ')}`);
}

function parseQuery(text: string, query: string): Record<string, string> {
  // No prototype: a key such as "__proto__" is an ordinary (and then unknown, refused) option.
  const options: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const pair of query.split('&').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0 || eq === pair.length - 1) throw bad(text, `option "${pair}" is not key=value`);
    try {
      options[decodeURIComponent(pair.slice(0, eq))] = decodeURIComponent(pair.slice(eq + 1));
    } catch {
      throw bad(text, `option "${pair}" is not correctly percent-encoded`);
    }
  }
  return options;
}

/**
 * Parses `text` into scheme, normalised target and options (a bare BDF is vfio). Throws
 * E_BAD_ADDRESS (UsageError, with a hint naming every scheme) for an empty text, an unknown
 * scheme, a target its scheme does not take, or an option that is not key=value.
 */
export function parseAddress(text: string): DeviceAddress {
  if (typeof text !== 'string') throw bad(shown(text), 'it is not a string');
  if (text.trim() === '') throw bad(text, 'it is empty');
  const s = text.trim();
  const colon = s.indexOf(':');
  const scheme = colon > 0 ? s.slice(0, colon) : '';
  if (!isScheme(scheme)) {
    const bdf = normaliseBdf(s);
    if (bdf) return { scheme: 'vfio', target: bdf, options: {} };
    throw bad(s, 'unknown scheme');
  }
  const rest = s.slice(colon + 1);
  const q = rest.indexOf('?');
  const checked = SCHEMES[scheme].target(q < 0 ? rest : rest.slice(0, q));
  if ('why' in checked) throw bad(s, checked.why);
  return { scheme, target: checked.target, options: q < 0 ? {} : parseQuery(s, rest.slice(q + 1)) };
}

/** The address as text, normalised: formatAddress(parseAddress('00:02.0')) is 'vfio:0000:00:02.0'. */
export function formatAddress(a: DeviceAddress): string {
  const q = new URLSearchParams(a.options).toString();
  return `${a.scheme}:${a.target}${q ? `?${q}` : ''}`;
}
