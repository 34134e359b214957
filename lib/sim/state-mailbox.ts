// The DEVICE_STATE mailbox registers (PROVISIONAL, constants.ts CommonCfg.DEVICE_STATE_*): a
// length, a DMA address and a command through which the device hands its extra state to the
// driver (SAVE) and takes it back (LOAD). Commands run inside the register write; CMD then reads 0
// when done, DeviceStateCmd.REFUSED (0xffff) when refused.
//
// DEVICE_STATE_LEN reads the bytes of state the device holds while STOP shows (0 when it holds
// nothing); between FEATURES_OK and DRIVER_OK it reads back what the driver wrote for LOAD; at any
// other time 0. DEVICE_STATE_ADDR reads back what was written.

import { CommonCfg, DeviceStateCmd } from '../virtio/constants.js';

/** What the mailbox needs from the device. Each may throw; a throw refuses the command. */
export interface MailboxHost {
  /** The state to SAVE, or undefined when SAVE is not allowed now (STOP does not show). */
  savableState(): Uint8Array | undefined;
  /** Whether LOAD is allowed now (after FEATURES_OK, before DRIVER_OK). */
  loadAllowed(): boolean;
  /** Copies `bytes` to driver memory at `addr`. */
  writeGuest(addr: bigint, bytes: Uint8Array): void;
  /** Copies `len` bytes of driver memory at `addr`. */
  readGuest(addr: bigint, len: number): Uint8Array;
  /** Validates and keeps a loaded state for DRIVER_OK. */
  load(bytes: Uint8Array): void;
}

const LOW32 = 0xffff_ffffn;

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
      else throw new Error(`unknown command ${cmd}`);
      this.result = 0;
    } catch (e) {
      this.refusal = e instanceof Error ? e.message : String(e);
      this.result = DeviceStateCmd.REFUSED;
    }
  }

  private save(): void {
    const bytes = this.host.savableState();
    if (!bytes) throw new Error('SAVE is allowed only while STOP shows');
    if (bytes.length > 0) this.host.writeGuest(this.addr, bytes);
  }

  private load(): void {
    if (!this.host.loadAllowed()) throw new Error('LOAD is allowed only after FEATURES_OK and before DRIVER_OK');
    this.host.load(this.host.readGuest(this.addr, this.driverLen));
  }
}
