// One ring as the front-end hands it to the back-end (vhost-user.rst "Starting and stopping
// rings", "Ring states"), and the waits around stopping it. Ring memory lives in the memfd arena;
// the back-end reaches it through SET_MEM_TABLE; the front-end reads a split ring's indices only
// through the virtqueue that owns it (QueueSetup.ring).

import { backoff } from '../../util/backoff.js';
import { PACKED_STATE_WRAP } from '../../spec/index.js';
import type { MemfdArena } from './arena.js';
import type { SplitRingIndices } from '../state.js';
import { Payload, Req, VRING_NOFD } from './protocol.js';

export interface RingConf {
  size: number;
  /** IOVAs (guest addresses in the arena) of the descriptor table, the driver and the device areas. */
  desc: bigint;
  driver: bigint;
  device: bigint;
  vector: number;
  /** The SET_VRING_BASE payload's num for the next start. */
  base: number;
  /** A split ring's indices, kept by the virtqueue that owns the ring memory (absent: packed). */
  ring?: SplitRingIndices;
  /** The used state to write to a split ring's used->idx before the start (undefined: as it is). */
  used?: number;
  enabled: boolean;
}

/** SET_VRING_BASE's num for a ring that starts afresh: split 0; packed index 0, both wrap counters 1 (docs/provisional-registers.md#other-stop-mechanisms). */
export function initialBase(packed: boolean): number {
  return packed ? PACKED_STATE_WRAP | (PACKED_STATE_WRAP << 16) : 0;
}

export type Message = [request: number, payload: Uint8Array, fds: number[]];

/**
 * The messages that start ring q, in QEMU's order (hw/virtio/vhost.c vhost_virtqueue_start):
 * NUM, BASE, ADDR, KICK, CALL, then ENABLE when VHOST_USER_F_PROTOCOL_FEATURES was negotiated
 * ("Ring states": such a ring starts disabled). BASE comes before ADDR because libvhost-user
 * reads used->idx from ring memory at SET_VRING_ADDR.
 */
export function startMessages(q: number, conf: RingConf, arena: MemfdArena, kick: number, call: number | undefined, enable: boolean): Message[] {
  const m: Message[] = [
    [Req.SET_VRING_NUM, Payload.state(q, conf.size), []],
    [Req.SET_VRING_BASE, Payload.state(q, conf.base), []],
    [Req.SET_VRING_ADDR, Payload.addr(q, arena.userAddress(conf.desc), arena.userAddress(conf.device), arena.userAddress(conf.driver)), []],
    [Req.SET_VRING_KICK, Payload.u64(BigInt(q)), [kick]],
    [Req.SET_VRING_CALL, Payload.u64(BigInt(q) | (call === undefined ? BigInt(VRING_NOFD) : 0n)), call === undefined ? [] : [call]],
  ];
  if (enable) m.push([Req.SET_VRING_ENABLE, Payload.state(q, 1), []]);
  return m;
}

/** A back-end whose used->idx has not moved for this long is taken to be done with what it can finish. */
export const SETTLE_MS = 2000;

/**
 * Before GET_VRING_BASE: lets the back-end finish what the driver made available (the driver adds
 * nothing meanwhile). Ends when used->idx reaches avail->idx, when used->idx has not moved for
 * SETTLE_MS (buffers that wait on outside events, e.g. net rx, never complete by themselves),
 * after limitMs, or once `gone()` reports the connection ended. Never waits on the main thread
 * (backoff yields to the event loop).
 */
export async function settle(ring: SplitRingIndices, limitMs: number, gone: () => boolean): Promise<void> {
  const t0 = Date.now();
  let last = ring.usedIdx();
  let moved = t0;
  for (let spins = 0; ring.usedIdx() !== ring.availIdx() && !gone(); spins++) {
    const now = Date.now();
    const used = ring.usedIdx();
    if (used !== last) [last, moved] = [used, now];
    if (now - moved > SETTLE_MS || now - t0 > limitMs) return;
    await backoff(spins);
  }
}

/**
 * After GET_VRING_BASE answered `avail`: waits (bounded by limitMs) until used->idx reaches it,
 * i.e. the back-end completed every request it fetched. Stops early when `gone()` reports the
 * connection ended. Returns whether it got there.
 */
export async function drained(ring: SplitRingIndices, avail: number, limitMs: number, gone: () => boolean): Promise<boolean> {
  const t0 = Date.now();
  for (let spins = 0; ring.usedIdx() !== avail; spins++) {
    if (gone() || Date.now() - t0 > limitMs) return false;
    await backoff(spins);
  }
  return true;
}
