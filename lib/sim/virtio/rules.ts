// The driver-side rules the reference device enforces: every "the driver MUST (NOT) …" of the
// spec that a device can observe. A driver that breaks one is recorded in the device's
// `violations` list (id, section, message) — always — and, for the rules whose action is
// 'needs-reset', the device also sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) with `failure`.
//
// Sections are virtio 1.2 (oasis-tcs/virtio-spec, tag v1.2-cs01) unless prefixed: "1.4 …" is the
// 1.4 text (SUSPEND), "proposal" is "[PATCH V2 0/2] Virtqueue State Synchronization" with the
// registers SPEC-NOTES §1 fixes provisionally, "PCI …" is PCI Local Bus 3.0.
//
// Which action, and why:
// - 'ignore': the device goes on the way a real device would (the write has no effect, a read
//   returns what the register holds, a request is answered with the status the device type
//   prescribes) — the driver's mistake does not stop it from working, or it does so visibly
//   (FEATURES_OK does not stick). QEMU and hardware behave this way, so a strict device that
//   did otherwise would hide which driver bugs matter in practice.
// - 'needs-reset': the ring or the device state can no longer be trusted — the device cannot
//   tell which buffer the driver meant (a loop, a reused buffer, an index that went backwards),
//   would have to touch memory the driver does not own, or would restore requests that do not add
//   up. Going on would serve the wrong buffers; the spec's answer is DEVICE_NEEDS_RESET.
//
// Not checked, because the device cannot see them or they are not driver rules in 1.2: memory
// barriers (§2.7.13.3.1, §2.8.21.1.1), the used ring's flags being zeroed at allocation (§2.7.10.1 —
// a reinit rightly reuses rings the previous device wrote), writes to read-only device
// configuration (no 1.2 MUST), ISR reads with MSI-X (a SHOULD NOT).

import { VirtqueueError, type ErrorCode } from '../../errors.js';

export type RuleAction = 'ignore' | 'needs-reset';

export interface Rule {
  /** Where the spec says it (see above for the prefixes). */
  readonly section: string;
  readonly action: RuleAction;
  /** What the driver must (not) do, in a few words. */
  readonly rule: string;
  /** The error code of `failure` for 'needs-reset' rules. */
  readonly code?: ErrorCode;
}

const ignore = (section: string, rule: string): Rule => ({ section, action: 'ignore', rule });
const reset = (section: string, code: ErrorCode, rule: string): Rule => ({ section, action: 'needs-reset', rule, code });

// device status (status.ts)
const STATUS = {
  'status-bit-cleared': ignore('2.1.1', 'never clear a device status bit (only a write of 0, a reset)'),
  'stop-cleared': ignore('proposal', 'never clear STOP: only a reset leaves it'),
  'init-after-failed': ignore('2.1.1', 'after setting FAILED, reset before initialising again'),
  'status-out-of-order': ignore('3.1.1', 'set ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in that order'),
  'reinit-before-reset-read': ignore('4.1.4.3.2', 'after writing 0 to device_status, wait for it to read 0 before initialising'),
  'features-written-early': ignore('3.1.1', 'write the accepted features after setting DRIVER (step 4)'),
  'features-written-late': ignore('3.1.1', 'accept no new feature bits after FEATURES_OK (step 5)'),
  'feature-not-offered': ignore('2.2.1', 'accept no feature the device did not offer'),
  'feature-dependency': ignore('2.2.1', 'accept no feature whose required feature was not accepted'),
  'version-1-not-accepted': ignore('6.1', 'accept VIRTIO_F_VERSION_1 when offered'),
  'stop-not-allowed': ignore('proposal', 'set STOP only with RING_STATE negotiated, on a running device'),
  'suspend-not-allowed': ignore('1.4 3.4.1', 'set SUSPEND only with VIRTIO_F_SUSPEND negotiated, after DRIVER_OK (SHOULD NOT; the device MUST ignore it, 1.4 §3.4.2)'),
} as const satisfies Record<string, Rule>;

// common configuration registers (common-cfg.ts)
const REGISTERS = {
  'register-access-invalid': ignore('4.1.3.1', 'access each common configuration field with its own width, aligned'),
  'read-only-register-write': ignore('4.1.4.3.2', 'never write device_feature, num_queues, config_generation, queue_notify_off'),
  'queue-size-invalid': ignore('4.1.4.3.2', 'queue_size: a power of 2 (split), never 0, at most the maximum (§4.1.5.1.3)'),
  'queue-config-while-enabled': ignore('4.1.4.3.2', 'configure the virtqueue fields before enabling the queue'),
  'queue-config-out-of-window': ignore('3.1.1', 'set up virtqueues after FEATURES_OK and before DRIVER_OK (step 7)'),
  'queue-enable-zero': ignore('4.1.4.3.2', 'never write 0 to queue_enable'),
  'msix-vector-out-of-range': ignore('4.1.5.1.2.2', 'map no event to a vector outside the MSI-X table'),
  'msix-vector-unverified': ignore('4.1.5.1.2.2', 'read a vector back after mapping it (checked at DRIVER_OK)'),
  'state-write-out-of-window': ignore('proposal', 'write the virtqueue state only between FEATURES_OK and DRIVER_OK, queue not enabled'),
  'state-read-not-stopped': ignore('proposal', 'read the virtqueue state only while STOP shows'),
  'state-not-written': ignore('proposal', 'with RING_STATE, write every enabled queue\'s state on every initialisation'),
  'config-access-invalid': ignore('4.1.3.1', 'access each device configuration field with its own width, aligned (64-bit as 32-bit halves)'),
  'config-field-not-offered': ignore('2.5.1', 'read an optional configuration field only when its feature is offered'),
} as const satisfies Record<string, Rule>;

// notifications (device.ts, function.ts)
const NOTIFICATIONS = {
  'notify-before-driver-ok': ignore('3.1.1', 'send no available buffer notification before DRIVER_OK'),
  'notify-invalid': ignore('4.1.5.2', 'notify by writing the 16-bit queue index at that queue\'s notify address'),
  'notify-while-suspended': ignore('1.4 3.4.1', 'send no notification once SUSPEND is set'),
  // The buffers are well formed; the device fetches them after the resume, as it would have anyway.
  'avail-while-suspended': ignore('1.4 3.4.1', 'make no buffer available once SUSPEND is set'),
} as const satisfies Record<string, Rule>;

// PCI configuration space (pci-config.ts)
const PCI = {
  'capability-write': ignore('4.1.4.1', 'never write a virtio capability, except the PCI_CFG access fields'),
  'pci-cfg-access-invalid': ignore('4.1.4.9.2', 'pci_cfg_data only with length 1, 2 or 4, offset aligned to it, inside another capability\'s structure'),
  'bus-master-disabled': reset('PCI 6.2.2', 'E_BAD_STATE', 'enable Bus Master before the device must reach driver memory'),
} as const satisfies Record<string, Rule>;

// rings (split-ring.ts, packed-ring.ts, ring.ts)
const RINGS = {
  // Ring and buffer memory the device cannot use: there is nothing sensible left to do.
  'ring-misaligned': reset('2.7.1', 'E_BAD_CHAIN', 'align each ring part as §2.7.1 / §2.8.11 require'),
  'ring-address-invalid': reset('6.1', 'E_BAD_ADDRESS', 'place the rings in memory the device can reach (IOVAs with ACCESS_PLATFORM)'),
  'buffer-address-invalid': reset('6.1', 'E_BAD_ADDRESS', 'pass only buffer addresses the device can reach'),
  // The available ring's index or a chain's links are corrupt: which buffers are meant is unknown.
  'avail-idx-decreased': reset('2.7.6.1', 'E_BAD_CHAIN', 'never decrement the available idx'),
  'avail-idx-too-far': reset('2.7', 'E_BAD_CHAIN', 'make at most queue size buffers available beyond the device\'s position'),
  'avail-head-out-of-range': reset('2.7.6', 'E_BAD_CHAIN', 'name only descriptors of the table in the available ring'),
  'desc-next-out-of-range': reset('2.7.5', 'E_BAD_CHAIN', 'link (next) only to descriptors of the same table'),
  'chain-loop': reset('2.7.5.2', 'E_BAD_CHAIN', 'no loops: a chain never longer than its table (packed: the ring, §2.8.17)'),
  // Linux and QEMU serve an indirect table longer than the ring; the chain is well formed otherwise.
  'chain-longer-than-queue': ignore('2.7.5.3.1', 'no descriptor chain longer than the queue size, indirect tables included (packed §2.8.17)'),
  // A used len is 32 bits: the device could not even say how much it wrote.
  'chain-too-large': reset('2.7.5.2', 'E_BAD_CHAIN', 'no chain longer than 2^32 bytes in total'),
  'readable-after-writable': reset('2.7.4.2', 'E_BAD_CHAIN', 'device-writable descriptors after all device-readable ones (packed §2.8.17)'),
  // Malformed chains: nothing of the request can be trusted (QEMU's virtio_error in each case).
  'zero-length-descriptor': reset('2.7.5', 'E_BAD_CHAIN', 'no zero-length buffers (no 1.2 MUST; refused as QEMU\'s virtqueue_map_desc does)'),
  'indirect-not-negotiated': reset('2.7.5.3.1', 'E_BAD_CHAIN', 'INDIRECT only with VIRTIO_F_INDIRECT_DESC (packed §2.8.19)'),
  'indirect-nested': reset('2.7.5.3.1', 'E_BAD_CHAIN', 'no INDIRECT inside an indirect table'),
  'indirect-with-next': reset('2.7.5.3.1', 'E_BAD_CHAIN', 'never INDIRECT together with NEXT, nor in a list linked by NEXT (packed §2.8.19)'),
  'indirect-table-invalid': reset('2.7.5.3', 'E_BAD_CHAIN', 'an indirect table is a non-zero whole number of 16-byte descriptors'),
  // §2.8.7 tells the device to ignore those flags, so it does.
  'indirect-entry-flags': ignore('2.8.19', 'packed: no flag but WRITE inside an indirect table (the device ignores them, §2.8.7)'),
  // Two outstanding buffers with one id: every used element for it would be ambiguous.
  'buffer-in-use': reset('3.3.1', 'E_BAD_CHAIN', 'never alter an exposed buffer: no head / buffer id made available again while the device holds it'),
  'list-partially-available': reset('2.8.17', 'E_BAD_CHAIN', 'packed: make a list\'s first descriptor available only after the rest (every descriptor\'s AVAIL/USED set, §2.8.6)'),
  // The driver overwrote a descriptor the device still owns: which request it meant is lost.
  'ring-overrun': reset('2.8.17', 'E_BAD_CHAIN', 'packed: make a list available only with room in the ring for all of it'),
  // Notification hints only (§2.7.7: "not reliable"): the device reads them as the spec says and goes on.
  'avail-flags-invalid': ignore('2.7.7.1', 'avail->flags: 0 with EVENT_IDX, else 0 or 1'),
  'driver-event-invalid': ignore('2.8.14', 'packed driver event suppression: flags 0–2, DESC only with EVENT_IDX and an offset inside the ring, reserved bits 0'),
} as const satisfies Record<string, Rule>;

// virtqueue state and the DEVICE_STATE mailbox (held.ts, state-mailbox.ts)
const STATE = {
  // Restoring from a state no ring can be in, or one the held requests do not add up to, would
  // serve requests twice or lose them — the one thing a reinit must never do.
  'state-impossible': reset('proposal', 'E_STATE_REFUSED', 'write a virtqueue state possible for the layout and the queue size'),
  'state-held-mismatch': reset('proposal', 'E_STATE_REFUSED', 'the requests between used and available state are exactly the held ones LOADed'),
  // Mailbox mistakes are refused with their code in DEVICE_STATE_CMD (state-mailbox.ts): the
  // driver learns at once, and the device's state is untouched.
  'state-command-not-now': ignore('proposal', 'DEVICE_STATE SAVE only while STOP shows; LOAD only between FEATURES_OK and DRIVER_OK'),
  'state-command-unknown': ignore('proposal', 'write only SAVE or LOAD to DEVICE_STATE_CMD'),
  'state-mailbox-address': ignore('proposal', 'point DEVICE_STATE_ADDR / LEN at memory the device can reach'),
} as const satisfies Record<string, Rule>;

// device types (blk.ts, net.ts, rng.ts)
const DEVICE_TYPES = {
  'blk-request-malformed': reset('5.2.6', 'E_BAD_CHAIN', 'blk: a 16-byte device-readable header first, the device-writable status byte last'),
  // Device-type mistakes in a well-formed chain get the answer the device type prescribes.
  'blk-beyond-capacity': ignore('5.2.6.1', 'blk: no read or write beyond capacity (answered IOERR)'),
  'blk-flush-sector': ignore('5.2.6.1', 'blk: sector 0 in a FLUSH request'),
  'blk-data-length': ignore('5.2.6.1', 'blk: IN/OUT data a multiple of 512, GET_ID 20 bytes, DISCARD/WRITE_ZEROES whole 16-byte ranges (answered IOERR)'),
  'blk-too-many-ranges': ignore('5.2.6.1', 'blk: at most max_discard_seg / max_write_zeroes_seg ranges (answered IOERR)'),
  'blk-discard-unmap': ignore('5.2.6.1', 'blk: the unmap bit is zero in DISCARD (answered UNSUPP)'),
  'net-tx-malformed': reset('5.1.6.2', 'E_BAD_CHAIN', 'net: a transmit chain is the 12-byte header then the frame, all device-readable'),
  'net-tx-header': ignore('5.1.6.2.1', 'net: transmit header with num_buffers 0, flags 0 without CSUM, no DATA_VALID / RSC_INFO, gso_type NONE without the HOST_* offload'),
  'net-rx-buffer-small': ignore('5.1.6.3.1', 'net: with MRG_RXBUF every receive buffer holds at least the 12-byte header'),
  'net-ctrl-malformed': reset('5.1.6.5', 'E_BAD_CHAIN', 'net: a control command is class, command, data (readable), then the ack byte (writable)'),
  'rng-request-malformed': reset('5.4.6.1', 'E_BAD_CHAIN', 'rng: device-writable buffers only'),
} as const satisfies Record<string, Rule>;

export const RULES = { ...STATUS, ...REGISTERS, ...NOTIFICATIONS, ...PCI, ...RINGS, ...STATE, ...DEVICE_TYPES } as const;

/** The rules by where the device checks them (each rule in one group). */
export const RULE_GROUPS = {
  'status': Object.keys(STATUS) as (keyof typeof STATUS)[],
  'registers': Object.keys(REGISTERS) as (keyof typeof REGISTERS)[],
  'notifications': Object.keys(NOTIFICATIONS) as (keyof typeof NOTIFICATIONS)[],
  'pci': Object.keys(PCI) as (keyof typeof PCI)[],
  'rings': Object.keys(RINGS) as (keyof typeof RINGS)[],
  'state': Object.keys(STATE) as (keyof typeof STATE)[],
  'device-types': Object.keys(DEVICE_TYPES) as (keyof typeof DEVICE_TYPES)[],
} as const;
export type RuleGroup = keyof typeof RULE_GROUPS;

export type RuleId = keyof typeof RULES;

/** One rule broken, as the device recorded it. */
export interface Violation {
  readonly id: RuleId;
  readonly section: string;
  /** What the device saw, the first time. */
  readonly message: string;
  /** The queue it happened on, for ring and queue rules. */
  readonly queue?: number;
  /** What the device did about it. */
  readonly action: RuleAction;
  /** How many times it happened (each rule and queue is one entry). */
  count: number;
}

/** Every violation since the device was made (a reset does not forget them), one entry per rule and queue. */
export class ViolationLog {
  readonly list: Violation[] = [];
  private readonly byKey = new Map<string, Violation>();

  record(id: RuleId, message: string, queue?: number): Violation {
    const key = queue === undefined ? id : `${id}@${queue}`;
    const seen = this.byKey.get(key);
    if (seen) {
      seen.count++;
      return seen;
    }
    const rule: Rule = RULES[id];
    const v: Violation = { id, section: rule.section, message, ...(queue === undefined ? {} : { queue }), action: rule.action, count: 1 };
    this.byKey.set(key, v);
    this.list.push(v);
    return v;
  }

  clear(): void {
    this.list.length = 0;
    this.byKey.clear();
  }
}

/**
 * A driver error that puts the device in DEVICE_NEEDS_RESET: thrown where the device finds it
 * (ring walks, DRIVER_OK checks), caught by the device, recorded and turned into `failure`.
 */
export class RuleViolation extends VirtqueueError {
  readonly rule: RuleId;
  constructor(rule: RuleId, queue: number, message: string) {
    const r: Rule = RULES[rule];
    super(r.code ?? 'E_BAD_STATE', queue, message, `the driver broke ${sectionName(r.section)} (${r.rule}); reset the device`);
    this.rule = rule;
  }
}

/** "virtio 1.2 §2.7.5.2", "virtio 1.4 §3.4.1", "the proposal", "PCI 3.0 §6.2.2". */
export function sectionName(section: string): string {
  if (section === 'proposal') return 'the virtqueue state proposal (SPEC-NOTES §1)';
  const [first, rest] = section.split(' ', 2);
  if (first === '1.4') return `virtio 1.4 §${rest}`;
  if (first === 'PCI') return `PCI 3.0 §${rest}`;
  return `virtio 1.2 §${section}`;
}
