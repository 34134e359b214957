// VirtioDevice: the device status machine and its queues over any VirtioTransport (virtio 1.2
// §2.1 status, §3.1.1 initialisation, §2.4 reset), and the device's failure: DEVICE_NEEDS_RESET
// (§2.1.2), a transport that lost its device, or a driver that gave up on it.
//
//   const dev = await VirtioDevice.open(transport, { features: { required: [...] } });
//   const q = dev.setupQueue(0, { drains: true, onUsed }); // between FEATURES_OK and DRIVER_OK
//   await dev.driverOk();                                  // the device is live
//   dev.config.read64(BlkConfig.CAPACITY); dev.dma.alloc(4096);
//   await dev.close();                                     // reset, free rings, release the transport
//
// Phases (DevicePhase): features-ok → live ⇄ stopped (stop/reinit/resume: state/migration.ts),
// live → needs-reset (the device failed; recover() or close()), → failed (given up), → closed.
// Parts: device-core.ts (what the parts share, the §3.1.1 sequence), interrupts.ts (routing),
// config.ts (device configuration), state/ (stop, state, reinit).

import { Status, VIRTIO_MSI_NO_VECTOR } from '../spec/index.js';
import { DeviceError, UsageError, type UvirtioError } from '../errors.js';
import type { DmaAllocator } from '../mem/dma.js';
import { FEATURE_POLICY_KEYS, negotiateFeatures, type FeaturePolicy } from './features.js';
import type { Layout, Virtqueue } from './queue/types.js';
import type { DeviceSnapshot } from './snapshot/index.js';
import { DeviceConfig } from './config.js';
import { DeviceCore, checkTransportOpen, initialise, markFailedStatus, type DevicePhase, type QueueOptions } from './device-core.js';
import { recover } from './recovery.js';
import { checkPollBudget, type PollBudget } from './busy-poll.js';
import { rendered, shown } from '../util/shown.js';
import { checkValue, choice, flag, int, intList, optionalValue, optionsObject, type OptionKeys } from '../util/options.js';
import { MECHANISMS } from './snapshot/index.js';
import { TransportOwner, checkTransportArgument } from './transport-owner.js';
import { Migration, REINIT_OPTION_KEYS, STOP_OPTION_KEYS, type ReinitOptions, type StopOptions, type StopPreparation } from './state/migration.js';
import type { Mechanism, VirtioTransport, VqState } from '../transport/types.js';

export type { DevicePhase, QueueOptions } from './device-core.js';
export { QUEUE_OPTION_KEYS } from './device-core.js';
export { checkTransportArgument } from './transport-owner.js';
export type { StopOptions, StopPreparation, ReinitOptions } from './state/migration.js';
/** Re-exported so drivers name a transport through lib/virtio (they never import lib/transport). */
export type { Mechanism, VirtioTransport, VqState } from '../transport/types.js';

/** How {@link VirtioDevice.open} initialises a device: feature policy, interrupts, state features and timeouts. */
export interface OpenOptions {
  /** Which feature bits to require and accept (virtio 1.2 §2.2); default: no device-type bits, SDK defaults for the rest. */
  features?: FeaturePolicy;
  /**
   * Accept the stop/state features the transport has room for and the device offers (RING_STATE,
   * DEVICE_STATE, SUSPEND) so that stop()/snapshot()/reinit() can use them (default true).
   * Without them, only quiesce (and a transport's own facility, vhost-user's backend) is possible.
   */
  stateFeatures?: boolean;
  /** 'auto' (default) uses MSI-X when the platform gives vectors, else polling. */
  interrupts?: 'auto' | 'msix' | 'poll';
  /** Bound on the wait for device_status to read 0 after a reset, and on each status change, in ms (default 1000). */
  resetTimeoutMs?: number;
  /**
   * Bound on how long requests in flight may see no progress before the device is declared
   * unresponsive (E_DEVICE_UNRESPONSIVE): it is reset and those requests are rejected
   * (QueueSet's watchdog). In ms; default 30 000; 1 to 3 600 000.
   */
  requestTimeoutMs?: number;
  /**
   * Poll-then-sleep for queues that have an interrupt vector: after each kick, and after each
   * completion while requests are in flight, the queue polls its used ring on every turn of the
   * event loop for up to this many µs with the device's used-buffer notifications suppressed; when
   * the window passes with nothing completed it enables them again (re-checking the ring, virtio
   * 1.2 §2.7.10) and waits for the interrupt. Saves the interrupt's round trip (eventfd → event
   * loop → handler, and the cost of waking a process that went to sleep) while the device answers
   * quickly, at the cost of up to this much CPU per idle period. In the TCG test VM windows of
   * 200 µs to 4 ms served QD1 reads at 2–2.9× the rate of pure interrupts in the same boot, with
   * less CPU per read (bench/README.md, bench:vm). 0 (default): interrupts only. An integer from 0
   * to 1 000 000 (µs).
   */
  hybridPollUs?: number;
  /**
   * When the used ring is polled (polling delivery, or inside a poll-then-sleep window), a turn of
   * the event loop that finds nothing returned first spins on the used index for up to this many
   * µs (reading the clock every 256 looks) before it yields to the event loop: a completion within
   * the spin is taken without the cost of more turns of the loop, at the price of holding the
   * event loop that long per turn. Default {@link DEFAULT_POLL_SPIN_US}, and 0 for a device that
   * runs on the driver's thread (VirtioTransport.deviceOnDriverThread: the reference device can
   * finish nothing during a spin); 0: no spin; an integer from 0 to 10 000 (µs).
   */
  pollSpinUs?: number;
  /**
   * When the used ring is polled, and when a used-buffer interrupt comes, the most used elements
   * one turn of the event loop takes before it yields, so that the completions' callbacks run,
   * their resubmissions become available and the device is notified while the rest wait for the
   * next turn (a NAPI poll's budget; see lib/virtio/busy-poll.ts). 'half': half of the chains in flight at the turn's start, at least
   * 16 (POLL_BUDGET_FLOOR) — the default, which on one queue at QD32 in the test VM served 1.4–1.6× what taking all
   * did (bench/README.md, bench:vm); 0 (the default for a device on the driver's thread, where
   * nothing overlaps): no cap; else an integer from 1 to 65 536. The check after a poll-then-sleep
   * window closes, a stop and a close take all there are; drain() waits through budgeted turns.
   */
  pollBudget?: PollBudget;
}

/** OpenOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
export const OPEN_OPTION_KEYS: OptionKeys<OpenOptions> = {
  features: true, stateFeatures: true, interrupts: true, resetTimeoutMs: true, requestTimeoutMs: true, hybridPollUs: true, pollSpinUs: true, pollBudget: true,
};

/** The OpenOptions a driver's open takes (all but `features`: the driver picks its feature bits). */
export const DRIVER_OPEN_OPTION_KEYS: OptionKeys<Omit<OpenOptions, 'features'>> = (({ features: _, ...rest }) => rest)(OPEN_OPTION_KEYS);

/** How {@link VirtioDevice.close} lets go of the device. */
export interface CloseOptions {
  /** Leave the transport open (and unowned) for another open on it (default false: it is closed too). */
  keepTransport?: boolean;
}
/** CloseOptions' keys: any other is refused (lib/util/options.ts optionsObject). */
const CLOSE_OPTION_KEYS: OptionKeys<CloseOptions> = { keepTransport: true };

/** OpenOptions.pollSpinUs by default (µs); measured in bench/README.md (bench:vm). */
export const DEFAULT_POLL_SPIN_US = 50;
/** The largest OpenOptions.pollSpinUs (10 ms). */
export const MAX_POLL_SPIN_US = 10_000;

const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

/** The values OpenOptions.interrupts takes. */
const INTERRUPTS = choice('auto', 'msix', 'poll');
/** The values a ring layout option (FeaturePolicy.layout, the drivers' `layout`) takes. */
export const LAYOUT_OPTION = choice('auto', 'split', 'packed');

/**
 * For a driver's open (BlkDriver, NetDriver, ConsoleDriver, RngDriver): checks, before anything
 * touches the device, that `driverOptions` is an object with only the driver's keys (`known`: its
 * own and the OpenOptions it passes on; a misspelt key is refused with the closest spelling as the
 * hint), the OpenOptions it passes on (checkOpenOptions, and that no `features` is given: the driver
 * picks its feature bits) and its ring options — `layout` ('auto', 'split', 'packed'), `queueSize`
 * (an integer from 1 to 32 768; a power of two with layout 'split', virtio 1.2 §2.7) and the
 * booleans named in `flags` (indirect, eventIdx, mergeable, multiport …). Throws E_INVALID_ARGUMENT
 * (UsageError) naming the option (prefixed with `what`) and the value. Returns the options (an
 * object, {} for undefined) and, apart, the OpenOptions among them for VirtioDevice.open.
 */
export function checkDriverOpenOptions<T extends object>(driverOptions: T | undefined, what: string, known: OptionKeys<T>, flags: readonly string[]): { options: T; open: OpenOptions } {
  const given = optionsObject(driverOptions, `${what} options`, known);
  const options = given as OpenOptions & Readonly<Record<string, unknown>>;
  if (options.features !== undefined) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what} takes no features option (got ${shown(options.features)}): the driver picks its feature bits`,
      'use its layout, indirect and eventIdx options (where it has them) instead');
  }
  checkOpenOptions(options, what);
  const layout = optionalValue(LAYOUT_OPTION, options.layout, `${what} layout`, "'auto' takes packed when offered; 'split' or 'packed' insists");
  optionalValue(int(1, 32_768, { powerOfTwo: layout === 'split' }), options.queueSize, `${what} queueSize (the queue size in entries${layout === 'split' ? ', of a split ring' : ''})`,
    "leave it out for the device's maximum; a split ring's size is a power of two (virtio 1.2 §2.7)");
  for (const k of flags) optionalValue(flag(), options[k], `${what} ${k}`, 'true or false, or leave it out');
  const open: Record<string, unknown> = {};
  for (const k of Object.keys(OPEN_OPTION_KEYS)) if (options[k] !== undefined) open[k] = options[k];
  return { options: given, open: open as OpenOptions };
}

/**
 * Checks the kind and value of OpenOptions' non-numeric fields — `interrupts`, `stateFeatures` and
 * the feature policy (`features` an object; its `layout`, `indirect`, `eventIdx`, and the bit
 * lists) — before anything touches a device. Throws E_INVALID_ARGUMENT (UsageError) naming the
 * option (prefixed with `what`), the value and the values allowed; returns `features` as an
 * object ({} when not given). The numeric fields are checked by VirtioDevice.open itself.
 */
export function checkOpenOptions(options: OpenOptions, what: string): FeaturePolicy {
  optionalValue(INTERRUPTS, options.interrupts, `${what} interrupts`, "'auto' (MSI-X when the platform gives vectors, else polling), 'msix' or 'poll', spelt so");
  optionalValue(flag(), options.stateFeatures, `${what} stateFeatures`, 'true or false, or leave it out (true)');
  const features = optionsObject(options.features, `${what} features`, FEATURE_POLICY_KEYS);
  optionalValue(LAYOUT_OPTION, features.layout, `${what} features.layout`, "'auto' takes packed when offered; 'split' or 'packed' insists");
  for (const k of ['indirect', 'eventIdx'] as const) optionalValue(flag(), features[k], `${what} features.${k}`, 'true or false, or leave it out (true)');
  for (const k of ['required', 'optional', 'transportExtras'] as const) {
    optionalValue(intList(0, 127), features[k], `${what} features.${k}`, 'feature bit numbers (virtio 1.2 §6), e.g. [0, 5]');
  }
  return features;
}
/** The longest bound any wait of a VirtioDevice takes (ms): one hour. */
const MAX_TIMEOUT_MS = 3_600_000;

/**
 * `value` when it is a usable bound on a wait (ms: a number above 0 and at most one hour; NaN or
 * Infinity would make the wait endless); throws E_INVALID_ARGUMENT (UsageError) otherwise.
 */
/**
 * `value` when it is a usable bound in ms (a finite number above 0, at most MAX_TIMEOUT_MS), else
 * UsageError E_INVALID_ARGUMENT naming `name`: every wait of the SDK is bounded.
 */
export function checkTimeout(value: number, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_MS) {
    throw new UsageError('E_INVALID_ARGUMENT', `${name} must be a number of milliseconds above 0 and at most ${MAX_TIMEOUT_MS}, got ${shown(value)}`,
      'every wait is bounded: give a finite bound');
  }
  return value;
}
/** The largest OpenOptions.hybridPollUs (1 s). */
export const MAX_HYBRID_POLL_US = 1_000_000;

/**
 * One virtio device driven over any {@link VirtioTransport}: the status machine and initialisation
 * (virtio 1.2 §2.1, §3.1.1), reset (§2.4), virtqueue set-up, device configuration (§2.5), DMA memory,
 * failure handling (DEVICE_NEEDS_RESET, §2.1.2) and stop/state/reinit (provisional:
 * docs/provisional-registers.md#stopping-a-device). Errors are {@link UvirtioError} subclasses:
 * {@link DeviceError} for what the device did, {@link UsageError} for calls out of phase.
 */
export class VirtioDevice {
  private readonly d: DeviceCore;
  private readonly m: Migration;
  /** The close() under way or done: every call gets its answer. */
  private closing: Promise<Map<number, unknown[]>> | undefined;
  /** The reset() under way: a close() waits for it, another reset() gets its answer. */
  private resetting: Promise<unknown[]> | undefined;
  /** The driverOk() under way: a reset() waits for it (bounded), then resets. */
  private enabling: Promise<void> | undefined;
  /**
   * The device configuration (virtio 1.2 §2.5), width-checked, each read inside one
   * config_generation; it follows a reinit onto another device.
   */
  readonly config: DeviceConfig;
  /**
   * The memory rings and buffers come from (the transport's at open). Invariant: it stays valid
   * for the device's life, across a reinit onto another device — reinit refuses a target that does
   * not reach the rings through this same memory (E_SNAPSHOT_ADDRESS).
   */
  readonly dma: DmaAllocator;

  private constructor(core: DeviceCore, polling: { hybridPollUs: number; pollSpinUs: number; pollBudget: PollBudget }) {
    this.hybridPollUs = polling.hybridPollUs;
    this.pollSpinUs = polling.pollSpinUs;
    this.pollBudget = polling.pollBudget;
    this.d = core;
    this.dma = core.t.dma;
    this.m = new Migration(core, this.dma);
    this.config = new DeviceConfig(() => this.d.t);
  }

  /**
   * Resets the device and runs §3.1.1 up to FEATURES_OK: ACKNOWLEDGE, DRIVER, negotiation,
   * FEATURES_OK and its read-back. On failure after ACKNOWLEDGE the device is left with FAILED set.
   * The device holds the transport until close() (or reset()): one driver per transport.
   * Rejects E_INVALID_ARGUMENT (`transport` is not one — pass openTransport(address).transport —
   * or a bad option), E_DEVICE_IN_USE (another VirtioDevice, e.g. a driver's, drives the
   * transport: checked before anything is touched, so of two opens at once one is refused),
   * E_CLOSED (a closed transport), E_FEATURE_MISSING, E_FEATURES_NOT_OK, E_RESET_TIMEOUT,
   * E_CAP_MISSING (MSI-X required but none), and the transport's codes.
   */
  static async open(transport: VirtioTransport, options: OpenOptions = {}): Promise<VirtioDevice> {
    checkTransportArgument(transport, 'VirtioDevice.open');
    options = optionsObject(options, 'VirtioDevice.open options', OPEN_OPTION_KEYS);
    const featurePolicy = checkOpenOptions(options, 'VirtioDevice.open');
    const resetTimeoutMs = checkTimeout(options.resetTimeoutMs ?? 1000, 'resetTimeoutMs');
    const requestTimeoutMs = checkValue(int(1, MAX_TIMEOUT_MS), options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS, 'requestTimeoutMs (ms)',
      'how long a request may take before the device counts as hung; every wait is bounded');
    const hybridPollUs = checkValue(int(0, MAX_HYBRID_POLL_US), options.hybridPollUs ?? 0, 'hybridPollUs (µs)',
      '0 turns poll-then-sleep off; a few hundred µs suits a device that answers in about that time');
    const pollSpinUs = checkValue(int(0, MAX_POLL_SPIN_US), options.pollSpinUs ?? (transport.deviceOnDriverThread === true ? 0 : DEFAULT_POLL_SPIN_US), 'pollSpinUs (µs)',
      '0 turns the spin off; it should be about the time the device takes to answer a request');
    const pollBudget = checkPollBudget(options.pollBudget ?? (transport.deviceOnDriverThread === true ? 0 : 'half'), 'pollBudget');
    checkTransportOpen(transport, 'opening the device');
    // Claimed before the first wait: a second open on the transport, now or while this one runs, is refused.
    const owner = new TransportOwner();
    owner.claim(transport, 'opening a device');
    let negotiated: { features: bigint; layout: Layout; offered: bigint } | undefined;
    try {
      await initialise(transport, resetTimeoutMs, (offered) => {
        const extras = options.stateFeatures === false ? [] : transport.stateFeatures();
        const policy = { ...featurePolicy, transportExtras: [...(featurePolicy.transportExtras ?? []), ...extras] };
        negotiated = { ...negotiateFeatures(offered, policy, transport.deviceType, transport.address), offered };
        return negotiated.features;
      });
      const { offered, features, layout } = negotiated!;
      const core = new DeviceCore(transport, offered, features, layout, resetTimeoutMs, requestTimeoutMs, options.interrupts ?? 'auto', owner);
      core.interrupts.route(transport);
      return new VirtioDevice(core, { hybridPollUs, pollSpinUs, pollBudget });
    } catch (e) {
      try {
        if (transport.readStatus() !== 0) transport.writeStatus(transport.readStatus() | Status.FAILED);
      } finally {
        owner.releaseAll();
      }
      throw e;
    }
  }

  /** The features both sides agreed (what was written and survived FEATURES_OK). */
  get features(): bigint {
    return this.d.features;
  }
  /** What the device offered. */
  get offered(): bigint {
    return this.d.offered;
  }
  /** Split or packed (VIRTIO_F_RING_PACKED negotiated). */
  get layout(): Layout {
    return this.d.layout;
  }
  /** See OpenOptions.hybridPollUs (µs; 0: off). */
  readonly hybridPollUs: number;
  /** See OpenOptions.pollSpinUs (µs; 0: no spin). */
  readonly pollSpinUs: number;
  /** See OpenOptions.pollBudget ('half', a fixed cap, or 0: no cap). */
  readonly pollBudget: PollBudget;
  /** See OpenOptions.requestTimeoutMs. */
  get requestTimeoutMs(): number {
    return this.d.requestTimeoutMs;
  }
  /** The transport of the device now driven (after reinit onto a target, the target's). */
  get transport(): VirtioTransport {
    return this.d.t;
  }
  /** Virtio device id (virtio 1.2 §5): 1 net, 2 blk, 4 rng, … */
  get deviceType(): number {
    return this.d.t.deviceType;
  }
  /** The address of the device driven now, for messages ("sim:blk", "vfio:0000:00:02.0", …). */
  get address(): string {
    return this.d.address;
  }
  /** The device's lifecycle phase (see DevicePhase). */
  get phase(): DevicePhase {
    return this.d.phase;
  }
  /** Why the device failed (needs-reset, failed), or null. */
  get failure(): UvirtioError | null {
    return this.d.failure;
  }
  /** 'msix' when interrupts are delivered, 'poll' when the driver must poll used rings. */
  get interruptMode(): 'msix' | 'poll' {
    return this.d.interrupts.mode;
  }
  /** Whether `feature` (a bit number) was negotiated. */
  has(feature: number): boolean {
    return this.d.has(feature);
  }

  /**
   * Called once each time the device fails while live — DEVICE_NEEDS_RESET or FAILED seen, the
   * transport lost its device, a queue's ring protocol broken, or markFailed() by a watchdog —
   * with the error pending requests are to be rejected with. Returns an unsubscribe.
   */
  onFailure(listener: (e: UvirtioError) => void): () => void {
    return this.d.onFailure(listener);
  }
  /**
   * Called when fail() gives up for good on a device whose failure was being handled already
   * (needs-reset: onFailure listeners were told then, and are not told again), with fail()'s
   * E_DEVICE_FAILED. recover() refuses the device from then on: what its owner (a QueueSet) kept
   * for one — receive buffers — is to be rejected with the error. Returns an unsubscribe.
   */
  onGivenUp(listener: (e: UvirtioError) => void): () => void {
    return this.d.givenUpListeners.add(listener);
  }
  /**
   * Treats the device as failed with `error` (it is then in needs-reset). Only a live device
   * fails this way; for a stopped one the error is remembered (a reinit onto it will fail on its
   * own) and nothing pending is touched: its requests wait for a reinit onto another device.
   */
  markFailed(error: UvirtioError): void {
    this.d.markFailed(error);
  }
  /**
   * Called once when close() — or reset() — has reset the device, whoever called it, with, by
   * queue, the tokens of every chain that was still in flight (what close() returns). The owner of
   * those chains (a QueueSet) rejects them: a driver's requests settle even when its device is
   * closed or reset under it. Returns an unsubscribe.
   */
  onClose(listener: (orphans: Map<number, unknown[]>) => void): () => void {
    return this.d.closeListeners.add(listener);
  }
  /** Called on each configuration change (vector 0). Returns an unsubscribe. */
  onConfigChange(listener: () => void): () => void {
    return this.d.interrupts.onConfigChange(listener);
  }

  /**
   * Sets up queue `index` with its policy (after FEATURES_OK, before DRIVER_OK: virtio 1.2 §3.1.1
   * step 7). Throws E_BAD_STATE (wrong phase, already set up), E_QUEUE_UNAVAILABLE (DeviceError:
   * a queue the transport does not have, queue_size reads 0 — checked before the size),
   * E_INVALID_ARGUMENT (options that are not an object or have a key QueueOptions does not, a size
   * that is no size, or beyond the device's maximum).
   */
  setupQueue<T = unknown>(index: number, options: QueueOptions = {}): Virtqueue<T> {
    return this.d.addQueue(index, options).vq as Virtqueue<T>;
  }

  /** The queue set up at `index`. Throws E_BAD_STATE when there is none. */
  queue<T = unknown>(index: number): Virtqueue<T> {
    const rec = this.d.queues.get(index);
    if (!rec) throw new UsageError('E_BAD_STATE', `${this.address}: queue ${index} is not set up`);
    return rec.vq as Virtqueue<T>;
  }
  /** Whether queue `index`'s chains complete by themselves (QueueOptions.drains). */
  drains(index: number): boolean {
    return this.d.queues.get(index)?.drains ?? true;
  }
  /** Notifies the device of queue `index` unconditionally (after a reinit or resume: the device's suppression state is fresh). */
  notifyQueue(index: number): void {
    this.d.queues.get(index)?.notify();
  }
  /**
   * Notifies queue `index` again when the device is live and no stop, reinit or recovery is under
   * way (a SUSPEND being set must see no notification: virtio 1.4 §3.4.1). Returns whether it did.
   * For a driver-side watchdog: a spurious available buffer notification is always allowed.
   */
  nudgeQueue(index: number): boolean {
    if (this.d.phase !== 'live' || this.d.operation) return false;
    this.d.queues.get(index)?.notify();
    return true;
  }
  /** Whether queue `index` gets interrupts (false: its user must poll). */
  queueHasInterrupts(index: number): boolean {
    const v = this.d.queues.get(index)?.vector;
    return v !== undefined && v !== VIRTIO_MSI_NO_VECTOR;
  }

  /**
   * Sets DRIVER_OK (virtio 1.2 §3.1.1 step 8) and waits (bounded by resetTimeoutMs: the transport's
   * flush, which vhost-user and vhost-vdpa have) until the device has taken it: the device is live.
   * One of the device's exclusive operations, like stop, reinit, resume, recover and reset: refused
   * UsageError E_BAD_STATE while one of them is under way (nothing is written to the device) or
   * outside phase features-ok; E_CLOSED on a closed device, and when close() is called while it
   * waits (the device stays closed, never live). A reset() called while it waits is done after it.
   * Rejects when the device refuses (E_DEVICE_NEEDS_RESET, E_DEVICE_FAILED, the transport's own
   * codes).
   */
  driverOk(): Promise<void> {
    try {
      this.d.ensureOpen(); // E_CLOSED before E_BAD_STATE: a close() during an operation ends it too
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const run = this.d.exclusive('driverOk', () => this.d.driverOk());
    this.enabling = run;
    const clear = (): void => {
      if (this.enabling === run) this.enabling = undefined;
    };
    run.then(clear, clear);
    return run;
  }
  /** The device's health from its status: DEVICE_NEEDS_RESET (§2.1.2) or FAILED as an error, else null. */
  healthError(): UvirtioError | null {
    return this.d.healthError();
  }
  /** Throws healthError() when there is one. */
  checkHealth(): void {
    const e = this.d.healthError();
    if (e) throw e;
  }
  /** Looks at the status register; a live device that shows NEEDS_RESET or FAILED is marked failed. */
  pollHealth(): void {
    this.d.pollHealth();
  }
  /** Reads the status register (for diagnostics). Throws E_BAD_STATE after reset() (the transport was let go of). */
  status(): number {
    this.refuseWhenReleased('read the status');
    return this.d.t.readStatus();
  }
  /**
   * Marks the device FAILED after an irrecoverable driver error (virtio 1.2 §3.1.1: the driver gave
   * up on it); the device goes to 'failed' (recover() refuses it; close() it). Its pending requests
   * settle as for a failure the device raised: onFailure listeners hear a DeviceError
   * E_DEVICE_FAILED, and a QueueSet (every driver's) resets the device — so it no longer writes
   * into their buffers — leaves it showing FAILED, and rejects each request in flight or waiting
   * for room with that error; later requests are refused with it. Does nothing on a closed
   * device. Throws UsageError E_BAD_STATE after reset() (this device let go of its transport;
   * another may drive it now) and while a reset(), driverOk(), stop, reinit, resume or recover is under way
   * (each is bounded: wait for it, then call again).
   */
  fail(): void {
    if (this.d.phase === 'closed') return;
    this.refuseWhenReleased('mark the device FAILED');
    if (this.d.operation) {
      throw new UsageError('E_BAD_STATE', `${this.address}: cannot mark the device FAILED while a ${this.d.operation} is in progress`,
        'wait for it to settle (each is bounded), then call fail() again');
    }
    this.d.t.writeStatus(this.d.t.readStatus() | Status.FAILED);
    this.d.giveUp(new DeviceError('E_DEVICE_FAILED', `${this.address}: the driver gave up on the device (fail()): it is marked FAILED`,
      'its pending requests were rejected (the device may or may not have carried them out); close it, and open the transport again to use the device'));
  }

  /**
   * Resets the device (bounded wait) and forgets every queue: tokens of chains still in flight
   * are returned so their owners can reject them — and, as for close(), onClose listeners get them
   * by queue first: a QueueSet (every driver's) rejects its pending requests (in flight or waiting
   * for room) with E_CLOSED and refuses later ones. The device must be opened again to be used
   * (VirtioDevice.open on the same transport: this one lets go of it, and its close() leaves the
   * transport open). Called again after that (or after close()) it does nothing and resolves with
   * [] — it never touches a transport it let go of, which another device may drive now; a call
   * while one is under way resolves with [] when that one is done (rejects as it does). Rejects
   * UsageError E_BAD_STATE while a stop, reinit, resume or recover is under way (each is bounded:
   * wait for it), and with the transport's E_RESET_TIMEOUT (the device then keeps its queues). A
   * driverOk() under way is waited for (bounded by resetTimeoutMs), then the device is reset: it is
   * never left live on the transport it let go of.
   */
  reset(): Promise<unknown[]> {
    if (this.resetting) return this.resetting.then(() => []);
    if (this.d.phase === 'reset' || this.d.phase === 'closed') return Promise.resolve([]);
    // One of the device's exclusive operations: a recover() (stop, reinit, resume) under way is not
    // let go of under it, and one asked for while this runs (driverOk() too) is refused. A
    // driverOk() under way is a single bounded step: waited for, then the device is reset — it is
    // never left live on the transport this lets go of.
    const enabling = this.enabling;
    const run = enabling
      ? enabling.then(() => undefined, () => undefined).then(() => (this.d.phase === 'reset' || this.d.phase === 'closed' ? [] : this.d.exclusive('reset', () => this.resetOnce())))
      : this.d.exclusive('reset', () => this.resetOnce());
    this.resetting = run;
    const clear = (): void => {
      if (this.resetting === run) this.resetting = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  private async resetOnce(): Promise<unknown[]> {
    const d = this.d;
    await d.t.reset(d.resetTimeoutMs);
    const orphans = d.takeCarried();
    for (const [q, { vq }] of d.queues) {
      orphans.set(q, [...(orphans.get(q) ?? []), ...vq.reset()]);
      vq.close();
    }
    d.queues.clear();
    d.phase = 'reset';
    // Done with the transport: nothing of it reaches this device any more (its interrupts, its
    // loss), and it holds nothing on it — another VirtioDevice may open it now.
    d.t.disableInterrupts();
    d.interrupts.forget();
    d.unwatch();
    d.owner.releaseAll();
    // The owners of the chains (a QueueSet) settle them, as after close(); told once.
    d.closeListeners.emit(orphans);
    d.closeListeners.clear();
    return [...orphans.values()].flat();
  }

  /** Throws UsageError E_BAD_STATE when this device let go of its transport with reset(). */
  private refuseWhenReleased(what: string): void {
    if (this.d.phase !== 'reset') return;
    throw new UsageError('E_BAD_STATE', `${this.address}: cannot ${what}: this VirtioDevice was reset and let go of its transport`,
      'a reset device is done with; open the transport again (VirtioDevice.open or a driver\'s open) and use that device');
  }

  // ---- failure and recovery (QueueSet drives these) ----

  /**
   * After a failure: resets the device so it no longer touches the rings or the buffers (bounded;
   * a device that will not reset is marked FAILED instead; one given up with fail() shows FAILED
   * again after it). The rings keep what the device wrote.
   */
  async resetAfterFailure(): Promise<void> {
    if (this.d.phase === 'reset' || this.d.phase === 'closed') return; // let go of the transport: not touched
    const t = this.d.t;
    await t.reset(this.d.resetTimeoutMs).catch(() => {
      if (this.d.phase !== 'reset' && this.d.phase !== 'closed') markFailedStatus(t); // let go of meanwhile: not touched
    });
    // Given up on with fail(): it shows FAILED again after the reset (a status write a reset device takes, §2.1.1).
    if (this.d.phase === 'failed') markFailedStatus(this.d.t);
  }
  /**
   * The tokens of queue `index`'s chains a restarted ring forgot (reinit() without restored
   * indices, recover()) that the reinit or recover under way — or the next attempt after one that
   * failed — hands back to be made available again; empty when there are none. For the free()
   * guard of whoever owns the tokens (QueueSet): their buffers are still to be used.
   */
  carriedTokens(index: number): readonly unknown[] {
    return this.d.carried.get(index) ?? [];
  }

  /**
   * Restarts every ring at index 0 (after a reset); returns, by queue, the tokens of the chains they
   * forgot, and of the chains a reinit or recover that did not finish still carried (see
   * carriedTokens: a device that failed for good during a reinit would otherwise keep them, and
   * their requests pending, until close()). Each token is returned once.
   */
  restartRings(): Map<number, unknown[]> {
    const out = this.d.takeCarried();
    for (const [q, { vq }] of this.d.queues) out.set(q, [...(out.get(q) ?? []), ...vq.reset()]);
    return out;
  }

  /**
   * Brings a failed device back (needs-reset → live): reset, §3.1.1 with the same features, every
   * queue set up again in the same memory at index 0, DRIVER_OK. Returns, by queue, the tokens of
   * chains the restarted rings forgot (QueueSet posts receive buffers again). On failure the device
   * stays in needs-reset.
   */
  recover(timeoutMs = this.d.resetTimeoutMs): Promise<Map<number, unknown[]>> {
    return this.d.exclusive('recover', () => recover(this.d, checkTimeout(timeoutMs, 'recover timeoutMs')));
  }

  /**
   * Resets the device, frees the rings, releases interrupts and the transport (closes it) — except
   * after reset(), which let go of the transport: it is then neither reset nor closed (it is the
   * caller's, or the next device's); a close() during a reset() waits for it. Idempotent: a call
   * while one is under way resolves when it is done, with the same map. Never throws for a device
   * that will not reset (it is marked FAILED). Returns, by queue, the tokens of
   * every chain that was still in flight, for their owners to reject.
   *
   * With `keepTransport` the transport itself is left open (and unowned): what a driver's open
   * does when it is refused after VirtioDevice.open succeeded, so that the caller can open again
   * on the same transport, as after VirtioDevice.open's own refusals. The first call decides.
   * Options that are not an object, or have a key CloseOptions does not (`keepTransprot`), reject
   * with E_INVALID_ARGUMENT and close nothing.
   */
  close(options: CloseOptions = {}): Promise<Map<number, unknown[]>> {
    try {
      options = optionsObject(options, 'close options', CLOSE_OPTION_KEYS);
      optionalValue(flag(), options.keepTransport, 'close option keepTransport', 'true or false, or leave it out (false)');
    } catch (e) {
      return Promise.reject(e as Error);
    }
    // A second close() while the first resets the device gets the same answer when the reset is
    // done: an owner closing too must neither free memory the device may still write nor miss the
    // chains in flight (they are only known after the reset).
    return (this.closing ??= this.closeOnce(options.keepTransport === true));
  }

  private async closeOnce(keepTransport: boolean): Promise<Map<number, unknown[]>> {
    const d = this.d;
    // A reset() under way ends first (bounded): the device lets go of the transport, and then this
    // close leaves it alone; one that failed left the device as it was, for this close to reset.
    if (this.resetting) await this.resetting.catch(() => undefined);
    const orphans = d.takeCarried();
    // After reset() the transport is no longer this device's (another VirtioDevice may have opened
    // it, or the caller will): neither reset nor closed here.
    const ours = d.phase !== 'reset' && !d.owner.otherHolds(d.t);
    // First: a stop, reinit, resume or recover in progress sees it at its next step and ends.
    d.phase = 'closed';
    try {
      if (ours) await d.t.reset(d.resetTimeoutMs).catch(() => markFailedStatus(d.t));
    } finally {
      for (const [q, { vq }] of d.queues) {
        if (!vq.broken || vq.broken.code !== 'E_CLOSED') orphans.set(q, [...(orphans.get(q) ?? []), ...vq.inFlightTokens()]);
        vq.close();
      }
      d.queues.clear();
      try {
        if (ours) d.t.disableInterrupts();
        d.unwatch();
        d.closeListeners.emit(orphans);
        if (ours && !keepTransport) d.t.close();
      } finally {
        d.owner.releaseAll();
      }
    }
    return orphans;
  }

  // ---- stop / virtqueue state / reinit (the proposal; state/migration.ts) ----

  /** The stop/state mechanisms this device supports now, best first: its transport's facilities, then quiesce. */
  mechanisms(): Mechanism[] {
    return this.d.facilities().map((f) => f.mechanism);
  }
  /** The mechanism used by the last stop(), or null. */
  get mechanism(): Mechanism | null {
    return this.m.mechanism;
  }

  /**
   * Stops the device so its queue state can be read. Callers stop submitting first (a RequestQueue
   * is paused; anything added to a ring meanwhile is simply picked up after reinit or resume).
   * Stopping a stopped device does nothing. Rejects E_STATE_UNSUPPORTED (a mechanism it lacks),
   * E_STOP_TIMEOUT / E_SUSPEND_TIMEOUT (the device is then failed, except for quiesce),
   * E_DEVICE_BAD_STATE (the device stopped with state its rings rule out: failed, at once),
   * E_DEVICE_NEEDS_RESET, E_BAD_STATE, E_CLOSED; E_CALLBACK_THREW when `prepare` throws or rejects
   * with something other than a UvirtioError (one it rejects with is the stop's error as it is).
   *
   * `prepare` (a driver's; see {@link StopPreparation}) runs inside the one-operation lock once the
   * stop is accepted — never for a refusal (a second operation, a bad bound, a mechanism the device
   * lacks, a device that is not live) — and before the device is asked to stop; `timeoutMs` bounds
   * both together. Each option is read once (a getter or Proxy answers once; the stop uses what was
   * checked).
   */
  async stop(options: StopOptions = {}, prepare?: StopPreparation): Promise<Mechanism> {
    options = optionsObject(options, 'stop options', STOP_OPTION_KEYS);
    const { mechanism } = options;
    if (mechanism !== undefined && mechanism !== 'auto' && !MECHANISMS.includes(mechanism)) {
      throw new UsageError('E_INVALID_ARGUMENT', `stop mechanism must be 'auto' or one of ${MECHANISMS.join(', ')}, got ${rendered(mechanism)}`,
        'leave it out (auto) or name one of mechanisms()');
    }
    if (prepare !== undefined && typeof prepare !== 'function') {
      throw new UsageError('E_INVALID_ARGUMENT', `a stop preparation must be a function, got ${shown(prepare)}`);
    }
    if (options.timeoutMs !== undefined) checkTimeout(options.timeoutMs, 'stop timeoutMs');
    if (this.m.settled) return this.m.mechanism!;
    return this.d.exclusive('stop', () => this.m.stop(options, prepare));
  }

  /**
   * Queue `q`'s state. Only while stopped (E_STATE_NOT_STOPPED): the proposal lets the driver read
   * it only while STOP shows. State a device reports (ring-state registers, a back-end) is checked
   * against the driver's own rings first: E_DEVICE_BAD_STATE when it cannot be true.
   */
  vqState(q: number): VqState {
    return this.m.vqState(q);
  }

  /** Everything reinit() needs, as plain JSON-serialisable data (lib/virtio/snapshot/). Throws E_STATE_NOT_STOPPED. */
  snapshot(): DeviceSnapshot {
    return this.m.snapshot();
  }

  /**
   * Resets the device (or brings up `target`, another device of the same type reaching the same
   * DMA memory) and re-initialises it with the snapshot, validated in full first (SnapshotError
   * codes: against the target and the driver's own rings). When the target's facility for the
   * snapshot's mechanism restores indices (ring-state, backend) the device continues from them;
   * otherwise each ring restarts at 0 and the tokens of chains still in flight are returned by
   * queue, for the caller to make available again (RequestQueue.repost). A transaction: a refusing
   * target is reset and the driver stays stopped for another attempt — unless the target had
   * completed requests (a retry would repeat them): then the device goes to `failed`. Each option
   * (`target`, `timeoutMs`) is read once; the reinit uses what was checked.
   */
  reinit(snapshot: DeviceSnapshot, options: ReinitOptions = {}): Promise<Map<number, unknown[]>> {
    return this.d.exclusive('reinit', () => {
      options = optionsObject(options, 'reinit options', REINIT_OPTION_KEYS);
      const { target } = options;
      if (target !== undefined) checkTransportArgument(target, 'reinit target');
      if (options.timeoutMs !== undefined) checkTimeout(options.timeoutMs, 'reinit timeoutMs');
      return this.m.reinit(snapshot, options);
    });
  }

  /**
   * Leaves the stopped state without a reset: SUSPEND clears; quiesce just goes on. STOP is one-way
   * (E_STATE_UNSUPPORTED). A device that set DEVICE_NEEDS_RESET or FAILED while stopped is not
   * made live: it goes to needs-reset (onFailure listeners told) and this rejects with
   * E_DEVICE_NEEDS_RESET / E_DEVICE_FAILED; recover() brings it back. `timeoutMs` in ms.
   */
  resume(timeoutMs = 5000): Promise<void> {
    return this.d.exclusive('resume', () => this.m.resume(checkTimeout(timeoutMs, 'resume timeoutMs')));
  }
}
