// The DEVICE_STATE mailbox registers (PROVISIONAL, lib/spec CommonCfg.DEVICE_STATE_*): a
// length, a DMA address and a command through which the device hands its extra state to the
// driver (SAVE) and takes it back (LOAD). Commands run inside the register write; CMD then reads 0
// when done, or the reason it was refused (lib/spec DeviceStateRefusal):
//
//   NOT_NOW          SAVE while STOP does not show; LOAD outside FEATURES_OK … DRIVER_OK
//   UNKNOWN_COMMAND  neither SAVE nor LOAD
//   MALFORMED        LOAD: not a state this device wrote (magic, version, lengths, fields)
//   MISMATCH         LOAD: a well-formed state that does not fit this device and its queues
//   BAD_ADDRESS      the buffer (DEVICE_STATE_ADDR, LEN) is not memory the device can reach
//   REFUSED 0xffff   only when a test injects device-state-refuse without a reason (faults.ts)
//
// DEVICE_STATE_LEN reads the bytes of state the device holds while STOP shows (0 when it holds
// nothing); between FEATURES_OK and DRIVER_OK it reads back what the driver wrote for LOAD; at any
// other time 0. DEVICE_STATE_ADDR reads back what was written.

import type { GuestMemory } from '../../mem/dma.js';
import { CommonCfg, DeviceStateCmd, DeviceStateRefusal, Status } from '../../spec/index.js';
import { thrownMessage } from '../../util/shown.js';
import type { FaultSet } from './faults.js';
import type { RuleId } from './rules.js';

/** A refused command: `code` is what DEVICE_STATE_CMD reads. */
export class Refusal extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** What the mailbox needs from the device. */
export interface MailboxHost {
  /** The state to SAVE, or undefined when SAVE is not allowed now (STOP does not show). */
  savableState(): Uint8Array | undefined;
  /** Whether LOAD is allowed now (after FEATURES_OK, before DRIVER_OK). */
  loadAllowed(): boolean;
  /** Copies `bytes` to driver memory at `addr`; throws when the device cannot reach it. */
  writeGuest(addr: bigint, bytes: Uint8Array): void;
  /** Copies `len` bytes of driver memory at `addr`; throws when the device cannot reach it. */
  readGuest(addr: bigint, len: number): Uint8Array;
  /** Validates and keeps a loaded state for DRIVER_OK; throws Refusal (MALFORMED, MISMATCH). */
  load(bytes: Uint8Array): void;
  /** Fault device-state-refuse: the code to refuse this command with, if any. */
  injectedRefusal(command: 'save' | 'load'): number | undefined;
  violation(rule: RuleId, message: string): void;
}

/** The parts of the device (device.ts) the mailbox's host is made of. */
export interface MailboxDevice {
  /** The device's quiet phase (common-cfg.ts QuietPhase): SAVE needs 'stopped', LOAD 'running'. */
  readonly phase: string;
  readonly common: { readonly status: number };
  readonly mem: GuestMemory;
  readonly held: { save(): Uint8Array; load(bytes: Uint8Array): void };
  readonly engine: { requireBusMaster(q: number): void };
  readonly faults: FaultSet;
  violation(rule: RuleId, message: string): void;
}

/**
 * The mailbox's view of `device`: SAVE only while STOP shows, LOAD only after FEATURES_OK and
 * before DRIVER_OK (docs/provisional-registers.md#other-stop-mechanisms), driver memory reached only with Bus Master Enable.
 */
export function mailboxHost(device: MailboxDevice): MailboxHost {
  return {
    savableState: () => (device.phase === 'stopped' ? device.held.save() : undefined),
    loadAllowed: () => {
      const s = device.common.status;
      return device.phase === 'running' && (s & Status.FEATURES_OK) !== 0 && (s & (Status.DRIVER_OK | Status.DEVICE_NEEDS_RESET)) === 0;
    },
    writeGuest: (addr, bytes) => {
      device.engine.requireBusMaster(0);
      device.mem.view(addr, bytes.length).set(bytes);
    },
    readGuest: (addr, len) => {
      device.engine.requireBusMaster(0);
      return device.mem.view(addr, len).slice();
    },
    load: (bytes) => device.held.load(bytes),
    injectedRefusal: (command) => (device.faults.any ? device.faults.refusal(command) : undefined),
    violation: (rule, message) => device.violation(rule, message),
  };
}

const LOW32 = 0xffff_ffffn;
/** Refusals that are the driver's protocol errors (rules.ts), not a verdict on the state's contents. */
const DRIVER_ERRORS: Readonly<Record<number, RuleId>> = {
  [DeviceStateRefusal.NOT_NOW]: 'state-command-not-now',
  [DeviceStateRefusal.UNKNOWN_COMMAND]: 'state-command-unknown',
  [DeviceStateRefusal.BAD_ADDRESS]: 'state-mailbox-address',
};

export class StateMailbox {
  private driverLen = 0;
  private addr = 0n;
  private result = 0;
  /** Why the last command was refused, until the next command or reset. */
  refusal: string | undefined;

  constructor(private readonly host: MailboxHost) {}

  reset(): void {
    this.driverLen = 0;
    this.addr = 0n;
    this.result = 0;
    this.refusal = undefined;
  }

  read(offset: number): number {
    switch (offset) {
      case CommonCfg.DEVICE_STATE_LEN: return this.length();
      case CommonCfg.DEVICE_STATE_ADDR: return Number(this.addr & LOW32);
      case CommonCfg.DEVICE_STATE_ADDR + 4: return Number(this.addr >> 32n);
      case CommonCfg.DEVICE_STATE_CMD: return this.result;
      default: return 0;
    }
  }

  write(offset: number, value: number): void {
    switch (offset) {
      case CommonCfg.DEVICE_STATE_LEN:
        if (this.host.loadAllowed()) this.driverLen = value >>> 0;
        return;
      case CommonCfg.DEVICE_STATE_ADDR:
        this.addr = (this.addr & ~LOW32) | BigInt(value >>> 0);
        return;
      case CommonCfg.DEVICE_STATE_ADDR + 4:
        this.addr = (this.addr & LOW32) | (BigInt(value >>> 0) << 32n);
        return;
      case CommonCfg.DEVICE_STATE_CMD:
        this.command(value);
        return;
      default:
    }
  }

  private length(): number {
    const saved = this.host.savableState();
    if (saved) return saved.length;
    return this.host.loadAllowed() ? this.driverLen : 0;
  }

  private command(cmd: number): void {
    this.refusal = undefined;
    try {
      if (cmd === DeviceStateCmd.SAVE) this.save();
      else if (cmd === DeviceStateCmd.LOAD) this.load();
      else throw new Refusal(DeviceStateRefusal.UNKNOWN_COMMAND, `unknown command ${cmd}`);
      this.result = 0;
    } catch (e) {
      const refusal = e instanceof Refusal ? e : new Refusal(DeviceStateCmd.REFUSED, thrownMessage(e));
      this.refusal = refusal.message;
      this.result = refusal.code;
      const rule = DRIVER_ERRORS[refusal.code];
      if (rule && !(e instanceof InjectedRefusal)) this.host.violation(rule, `DEVICE_STATE command ${cmd} refused: ${refusal.message}`);
    }
  }

  private save(): void {
    this.injected('save');
    const bytes = this.host.savableState();
    if (!bytes) throw new Refusal(DeviceStateRefusal.NOT_NOW, 'SAVE is allowed only while STOP shows');
    if (bytes.length > 0) this.guest(() => this.host.writeGuest(this.addr, bytes), bytes.length);
  }

  private load(): void {
    this.injected('load');
    if (!this.host.loadAllowed()) throw new Refusal(DeviceStateRefusal.NOT_NOW, 'LOAD is allowed only after FEATURES_OK and before DRIVER_OK');
    const bytes = this.guest(() => this.host.readGuest(this.addr, this.driverLen), this.driverLen);
    this.host.load(bytes);
  }

  private injected(command: 'save' | 'load'): void {
    const code = this.host.injectedRefusal(command);
    if (code !== undefined) throw new InjectedRefusal(code, `${command.toUpperCase()} refused by the injected fault device-state-refuse`);
  }

  /** The mailbox buffer itself: memory the device cannot reach is BAD_ADDRESS. */
  private guest<T>(access: () => T, len: number): T {
    try {
      return access();
    } catch (e) {
      throw new Refusal(DeviceStateRefusal.BAD_ADDRESS,
        `the buffer at 0x${this.addr.toString(16)}+${len} is not reachable (${thrownMessage(e)})`);
    }
  }
}

class InjectedRefusal extends Refusal {}
