// Option values shared by the commands: commander argument parsers (a bad value becomes
// commander's "argument … is invalid" error, then our E_INVALID_ARGUMENT line) and the choices.

import { InvalidArgumentError, type Command } from 'commander';
import type { Mechanism } from '../lib/virtio/snapshot/index.js';
import type { Layout } from '../lib/virtio/queue/types.js';
import { BOUNDS } from './wait.js';

/** An integer option from `min` to `max`; "1e9", "0x10", "1.5" and "" are refused. */
export function intArg(what: string, min: number, max: number): (v: string) => number {
  return (v: string): number => {
    const n = /^-?[0-9]+$/.test(v.trim()) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`);
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
