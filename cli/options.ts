// Option values shared by the commands: commander argument parsers (a bad value becomes
// commander's "argument … is invalid" error, then our E_INVALID_ARGUMENT line) and the choices.

import { InvalidArgumentError, type Command } from 'commander';
import type { Mechanism } from '../lib/virtio/snapshot/index.js';
import type { Layout } from '../lib/virtio/queue/types.js';
import { int } from '../lib/util/options.js';
import { BOUNDS } from './wait.js';

/**
 * An integer option from `min` to `max`, read by the SDK's one option parser (lib/util/options.ts
 * `int`, the same rule as address options): "1e9", "0x10", "1.5" and "" are refused.
 */
export function intArg(what: string, min: number, max: number): (v: string) => number {
  const spec = int(min, max);
  return (v: string): number => {
    const n = spec.parse(v.trim());
    if (n === undefined) throw new InvalidArgumentError(`${what} must be ${spec.expects}`);
    return n;
  };
}

export const MECHANISM_CHOICES = ['auto', 'ring-state', 'suspend', 'backend', 'quiesce'] as const satisfies readonly (Mechanism | 'auto')[];
export const LAYOUT_CHOICES = ['auto', 'split', 'packed'] as const satisfies readonly (Layout | 'auto')[];
export type MechanismChoice = (typeof MECHANISM_CHOICES)[number];
export type LayoutChoice = (typeof LAYOUT_CHOICES)[number];

/** The global --timeout (any command): the bound on each wait for the device. */
export function timeoutOf(cmd: Command): number {
  return (cmd.optsWithGlobals() as { timeout?: number }).timeout ?? BOUNDS.DEVICE_MS;
}
