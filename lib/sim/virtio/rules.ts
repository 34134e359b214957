// The driver-side rules the reference device enforces: every "the driver MUST (NOT) …" of the
// spec that a device can observe. A driver that breaks one is recorded in the device's
// `violations` list (id, section, message) — always — and, for the rules whose action is
// 'needs-reset', the device also sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) with `failure`.
//
// Sections are virtio 1.2 (oasis-tcs/virtio-spec, tag v1.2-cs01) unless prefixed: "1.4 …" is the
// 1.4 text (SUSPEND), "proposal" is "[PATCH V2 0/2] Virtqueue State Synchronization" with the
// registers docs/provisional-registers.md fixes provisionally, "PCI …" is PCI Local Bus 3.0.
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

/**
 * What the device does when a driver breaks a rule, besides recording it in `violations`:
 * 'ignore' goes on as a real device would (the write has no effect, the request gets the status
 * its device type prescribes); 'needs-reset' sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2) with
 * `failure`, because the ring or the device state can no longer be trusted.
 */
export type RuleAction = 'ignore' | 'needs-reset';

/** One driver rule of the catalogue (RULES): where the spec states it, what it asks, what the device does about it. */
export interface Rule {
  /** Where the spec says it (see above for the prefixes). */
  readonly section: string;
  /** What the device does when the rule is broken. */
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
  /** Device status bits are only ever added: clearing one takes a write of 0, a reset (virtio 1.2 §2.1.1). */
  'status-bit-cleared': ignore('2.1.1', 'never clear a device status bit (only a write of 0, a reset)'),
  /** STOP, once set, stays until a reset (proposal; docs/provisional-registers.md#stopping-a-device). */
  'stop-cleared': ignore('proposal', 'never clear STOP: only a reset leaves it'),
  /** After the driver sets FAILED it resets the device before initialising it again (virtio 1.2 §2.1.1). */
  'init-after-failed': ignore('2.1.1', 'after setting FAILED, reset before initialising again'),
  /** Initialisation sets ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in this order (virtio 1.2 §3.1.1). */
  'status-out-of-order': ignore('3.1.1', 'set ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in that order'),
  /** After writing 0 to device_status the driver waits to read 0 back before initialising (virtio 1.2 §4.1.4.3.2). */
  'reinit-before-reset-read': ignore('4.1.4.3.2', 'after writing 0 to device_status, wait for it to read 0 before initialising'),
  /** Accepted features are written only once DRIVER is set, step 4 (virtio 1.2 §3.1.1). */
  'features-written-early': ignore('3.1.1', 'write the accepted features after setting DRIVER (step 4)'),
  /** No feature bit is accepted after FEATURES_OK, step 5 (virtio 1.2 §3.1.1). */
  'features-written-late': ignore('3.1.1', 'accept no new feature bits after FEATURES_OK (step 5)'),
  /** The driver accepts only features the device offered (virtio 1.2 §2.2.1). */
  'feature-not-offered': ignore('2.2.1', 'accept no feature the device did not offer'),
  /** A feature is accepted only together with the features it depends on (virtio 1.2 §2.2.1). */
  'feature-dependency': ignore('2.2.1', 'accept no feature whose required feature was not accepted'),
  /** VIRTIO_F_VERSION_1 is accepted whenever the device offers it (virtio 1.2 §6.1). */
  'version-1-not-accepted': ignore('6.1', 'accept VIRTIO_F_VERSION_1 when offered'),
  /** STOP is set only with RING_STATE negotiated and the device running (proposal; docs/provisional-registers.md#feature-and-status-bits). */
  'stop-not-allowed': ignore('proposal', 'set STOP only with RING_STATE negotiated, on a running device'),
  /** SUSPEND is set only with VIRTIO_F_SUSPEND negotiated and after DRIVER_OK; otherwise the device ignores it (virtio 1.4 §3.4.1, §3.4.2). */
  'suspend-not-allowed': ignore('1.4 3.4.1', 'set SUSPEND only with VIRTIO_F_SUSPEND negotiated, after DRIVER_OK (SHOULD NOT; the device MUST ignore it, 1.4 §3.4.2)'),
} as const satisfies Record<string, Rule>;

// common configuration registers (common-cfg.ts)
const REGISTERS = {
  /** Each common configuration field is accessed with its own width at its own aligned offset (virtio 1.2 §4.1.3.1). */
  'register-access-invalid': ignore('4.1.3.1', 'access each common configuration field with its own width, aligned'),
  /** device_feature, num_queues, config_generation and queue_notify_off are never written (virtio 1.2 §4.1.4.3.2). */
  'read-only-register-write': ignore('4.1.4.3.2', 'never write device_feature, num_queues, config_generation, queue_notify_off'),
  /** A queue_size written is non-zero, at most the device's maximum and, for split rings, a power of 2 (virtio 1.2 §4.1.4.3.2, §4.1.5.1.3). */
  'queue-size-invalid': ignore('4.1.4.3.2', 'queue_size: a power of 2 (split), never 0, at most the maximum (§4.1.5.1.3)'),
  /** A queue's fields are configured before queue_enable is set, never after (virtio 1.2 §4.1.4.3.2). */
  'queue-config-while-enabled': ignore('4.1.4.3.2', 'configure the virtqueue fields before enabling the queue'),
  /** Virtqueues are set up between FEATURES_OK and DRIVER_OK, step 7 (virtio 1.2 §3.1.1). */
  'queue-config-out-of-window': ignore('3.1.1', 'set up virtqueues after FEATURES_OK and before DRIVER_OK (step 7)'),
  /** queue_enable is never written with 0 (virtio 1.2 §4.1.4.3.2). */
  'queue-enable-zero': ignore('4.1.4.3.2', 'never write 0 to queue_enable'),
  /** No queue or configuration event is mapped to a vector beyond the MSI-X table (virtio 1.2 §4.1.5.1.2.2). */
  'msix-vector-out-of-range': ignore('4.1.5.1.2.2', 'map no event to a vector outside the MSI-X table'),
  /** After mapping a vector the driver reads it back to see whether the device took it; checked at DRIVER_OK (virtio 1.2 §4.1.5.1.2.2). */
  'msix-vector-unverified': ignore('4.1.5.1.2.2', 'read a vector back after mapping it (checked at DRIVER_OK)'),
  /** A queue's state registers are written only between FEATURES_OK and DRIVER_OK, with the queue not yet enabled (proposal; docs/provisional-registers.md#state-registers). */
  'state-write-out-of-window': ignore('proposal', 'write the virtqueue state only between FEATURES_OK and DRIVER_OK, queue not enabled'),
  /** A queue's state registers are read only while the device shows STOP (proposal; docs/provisional-registers.md#state-registers). */
  'state-read-not-stopped': ignore('proposal', 'read the virtqueue state only while STOP shows'),
  /** With RING_STATE negotiated, each initialisation writes the state of every queue it enables (proposal; docs/provisional-registers.md#state-registers). */
  'state-not-written': ignore('proposal', 'with RING_STATE, write every enabled queue\'s state on every initialisation'),
  /** Each device configuration field is accessed with its own width, aligned; 64-bit fields as two 32-bit halves (virtio 1.2 §4.1.3.1). */
  'config-access-invalid': ignore('4.1.3.1', 'access each device configuration field with its own width, aligned (64-bit as 32-bit halves)'),
  /** An optional device configuration field is read only when the feature that makes it exist is offered (virtio 1.2 §2.5.1). */
  'config-field-not-offered': ignore('2.5.1', 'read an optional configuration field only when its feature is offered'),
} as const satisfies Record<string, Rule>;

// notifications (device.ts, function.ts)
const NOTIFICATIONS = {
  /** No available buffer notification is sent before DRIVER_OK (virtio 1.2 §3.1.1). */
  'notify-before-driver-ok': ignore('3.1.1', 'send no available buffer notification before DRIVER_OK'),
  /** A notification is the queue's 16-bit index written at that queue's own notify address (virtio 1.2 §4.1.5.2). */
  'notify-invalid': ignore('4.1.5.2', 'notify by writing the 16-bit queue index at that queue\'s notify address'),
  /** Once SUSPEND is set the driver sends no notification (virtio 1.4 §3.4.1). */
  'notify-while-suspended': ignore('1.4 3.4.1', 'send no notification once SUSPEND is set'),
  // The buffers are well formed; the device fetches them after the resume, as it would have anyway.
  /** Once SUSPEND is set the driver makes no buffer available; the device fetches such buffers after the resume (virtio 1.4 §3.4.1). */
  'avail-while-suspended': ignore('1.4 3.4.1', 'make no buffer available once SUSPEND is set'),
} as const satisfies Record<string, Rule>;

// PCI configuration space (pci/config.ts)
const PCI = {
  /** Virtio vendor capabilities are read-only, except the access fields of VIRTIO_PCI_CAP_PCI_CFG (virtio 1.2 §4.1.4.1). */
  'capability-write': ignore('4.1.4.1', 'never write a virtio capability, except the PCI_CFG access fields'),
  /** An access through pci_cfg_data has length 1, 2 or 4, an offset aligned to it, and lands inside another capability's structure (virtio 1.2 §4.1.4.9.2). */
  'pci-cfg-access-invalid': ignore('4.1.4.9.2', 'pci_cfg_data only with length 1, 2 or 4, offset aligned to it, inside another capability\'s structure'),
  /** Bus Master is enabled in the PCI command register before the device has to read or write driver memory; otherwise the device needs a reset (PCI 3.0 §6.2.2). */
  'bus-master-disabled': reset('PCI 6.2.2', 'E_BAD_STATE', 'enable Bus Master before the device must reach driver memory'),
} as const satisfies Record<string, Rule>;

// rings (ring/split.ts, ring/packed.ts, ring/chain.ts)
const RINGS = {
  // Ring and buffer memory the device cannot use: there is nothing sensible left to do.
  /** Each part of a ring sits at the alignment the layout requires; otherwise the device needs a reset (virtio 1.2 §2.7.1, §2.8.11). */
  'ring-misaligned': reset('2.7.1', 'E_BAD_CHAIN', 'align each ring part as §2.7.1 / §2.8.11 require'),
  /** The rings lie in memory the device can reach (IOVAs under VIRTIO_F_ACCESS_PLATFORM); otherwise the device needs a reset (virtio 1.2 §6.1). */
  'ring-address-invalid': reset('6.1', 'E_BAD_ADDRESS', 'place the rings in memory the device can reach (IOVAs with ACCESS_PLATFORM)'),
  /** Every buffer address lies in memory the device can reach; otherwise the device needs a reset (virtio 1.2 §6.1). */
  'buffer-address-invalid': reset('6.1', 'E_BAD_ADDRESS', 'pass only buffer addresses the device can reach'),
  // The available ring's index or a chain's links are corrupt: which buffers are meant is unknown.
  /** The available ring's idx only moves forward; otherwise the device needs a reset (virtio 1.2 §2.7.6.1). */
  'avail-idx-decreased': reset('2.7.6.1', 'E_BAD_CHAIN', 'never decrement the available idx'),
  /** The available idx runs at most the queue size ahead of the device's position; otherwise the device needs a reset (virtio 1.2 §2.7). */
  'avail-idx-too-far': reset('2.7', 'E_BAD_CHAIN', 'make at most queue size buffers available beyond the device\'s position'),
  /** Each head in the available ring is an index into the descriptor table; otherwise the device needs a reset (virtio 1.2 §2.7.6). */
  'avail-head-out-of-range': reset('2.7.6', 'E_BAD_CHAIN', 'name only descriptors of the table in the available ring'),
  /** A descriptor's next field names a descriptor of the same table; otherwise the device needs a reset (virtio 1.2 §2.7.5). */
  'desc-next-out-of-range': reset('2.7.5', 'E_BAD_CHAIN', 'link (next) only to descriptors of the same table'),
  /** A chain has no loop: it is never longer than its table (packed: than the ring, §2.8.17); otherwise the device needs a reset (virtio 1.2 §2.7.5.2). */
  'chain-loop': reset('2.7.5.2', 'E_BAD_CHAIN', 'no loops: a chain never longer than its table (packed: the ring, §2.8.17)'),
  // Linux and QEMU serve an indirect table longer than the ring; the chain is well formed otherwise.
  /** A chain, indirect tables included, holds at most queue size descriptors; recorded only, the chain is served as Linux and QEMU do (virtio 1.2 §2.7.5.3.1, packed §2.8.17). */
  'chain-longer-than-queue': ignore('2.7.5.3.1', 'no descriptor chain longer than the queue size, indirect tables included (packed §2.8.17)'),
  // A used len is 32 bits: the device could not even say how much it wrote.
  /** A chain's buffers add up to at most 2^32 bytes, the most a used len can express; otherwise the device needs a reset (virtio 1.2 §2.7.5.2). */
  'chain-too-large': reset('2.7.5.2', 'E_BAD_CHAIN', 'no chain longer than 2^32 bytes in total'),
  /** All device-readable descriptors of a chain come before the device-writable ones; otherwise the device needs a reset (virtio 1.2 §2.7.4.2, packed §2.8.17). */
  'readable-after-writable': reset('2.7.4.2', 'E_BAD_CHAIN', 'device-writable descriptors after all device-readable ones (packed §2.8.17)'),
  // Malformed chains: nothing of the request can be trusted (QEMU's virtio_error in each case).
  /** No descriptor has length 0; not a 1.2 MUST, refused as QEMU's virtqueue_map_desc refuses it, with a reset needed (virtio 1.2 §2.7.5). */
  'zero-length-descriptor': reset('2.7.5', 'E_BAD_CHAIN', 'no zero-length buffers (no 1.2 MUST; refused as QEMU\'s virtqueue_map_desc does)'),
  /** The INDIRECT flag is used only with VIRTIO_F_INDIRECT_DESC negotiated; otherwise the device needs a reset (virtio 1.2 §2.7.5.3.1, packed §2.8.19). */
  'indirect-not-negotiated': reset('2.7.5.3.1', 'E_BAD_CHAIN', 'INDIRECT only with VIRTIO_F_INDIRECT_DESC (packed §2.8.19)'),
  /** An indirect table holds no INDIRECT descriptor; otherwise the device needs a reset (virtio 1.2 §2.7.5.3.1). */
  'indirect-nested': reset('2.7.5.3.1', 'E_BAD_CHAIN', 'no INDIRECT inside an indirect table'),
  /** INDIRECT is never combined with NEXT nor used inside a NEXT-linked list; otherwise the device needs a reset (virtio 1.2 §2.7.5.3.1, packed §2.8.19). */
  'indirect-with-next': reset('2.7.5.3.1', 'E_BAD_CHAIN', 'never INDIRECT together with NEXT, nor in a list linked by NEXT (packed §2.8.19)'),
  /** An indirect table's length is a non-zero multiple of the 16-byte descriptor; otherwise the device needs a reset (virtio 1.2 §2.7.5.3). */
  'indirect-table-invalid': reset('2.7.5.3', 'E_BAD_CHAIN', 'an indirect table is a non-zero whole number of 16-byte descriptors'),
  // §2.8.7 tells the device to ignore those flags, so it does.
  /** Packed: descriptors inside an indirect table carry no flag but WRITE; recorded, the other flags ignored as §2.8.7 says (virtio 1.2 §2.8.19). */
  'indirect-entry-flags': ignore('2.8.19', 'packed: no flag but WRITE inside an indirect table (the device ignores them, §2.8.7)'),
  // Two outstanding buffers with one id: every used element for it would be ambiguous.
  /** A head or buffer id is not made available again while the device still holds it; otherwise the device needs a reset (virtio 1.2 §3.3.1). */
  'buffer-in-use': reset('3.3.1', 'E_BAD_CHAIN', 'never alter an exposed buffer: no head / buffer id made available again while the device holds it'),
  /** Packed: a list's first descriptor is made available only after all its others are; otherwise the device needs a reset (virtio 1.2 §2.8.17, §2.8.6). */
  'list-partially-available': reset('2.8.17', 'E_BAD_CHAIN', 'packed: make a list\'s first descriptor available only after the rest (every descriptor\'s AVAIL/USED set, §2.8.6)'),
  // The driver overwrote a descriptor the device still owns: which request it meant is lost.
  /** Packed: a list is made available only when the ring has room for all of it; otherwise the device needs a reset (virtio 1.2 §2.8.17). */
  'ring-overrun': reset('2.8.17', 'E_BAD_CHAIN', 'packed: make a list available only with room in the ring for all of it'),
  // Notification hints only (§2.7.7: "not reliable"): the device reads them as the spec says and goes on.
  /** avail->flags is 0 with EVENT_IDX negotiated, else 0 or 1 (NO_INTERRUPT); recorded, the hint read as the spec says (virtio 1.2 §2.7.7.1). */
  'avail-flags-invalid': ignore('2.7.7.1', 'avail->flags: 0 with EVENT_IDX, else 0 or 1'),
  /** Packed driver event suppression: flags 0 to 2, DESC only with EVENT_IDX and an offset inside the ring, reserved bits zero (virtio 1.2 §2.8.14). */
  'driver-event-invalid': ignore('2.8.14', 'packed driver event suppression: flags 0–2, DESC only with EVENT_IDX and an offset inside the ring, reserved bits 0'),
} as const satisfies Record<string, Rule>;

// virtqueue state and the DEVICE_STATE mailbox (held.ts, state-mailbox.ts)
const STATE = {
  // Restoring from a state no ring can be in, or one the held requests do not add up to, would
  // serve requests twice or lose them — the one thing a reinit must never do.
  /** A virtqueue state written is one a ring of that layout and size can be in; otherwise the device needs a reset (E_STATE_REFUSED) (proposal; docs/provisional-registers.md#state-encoding). */
  'state-impossible': reset('proposal', 'E_STATE_REFUSED', 'write a virtqueue state possible for the layout and the queue size'),
  /** The requests between the used and available state are exactly the held requests LOADed through DEVICE_STATE; otherwise the device needs a reset (proposal; docs/provisional-registers.md#device-state). */
  'state-held-mismatch': reset('proposal', 'E_STATE_REFUSED', 'the requests between used and available state are exactly the held ones LOADed'),
  // Mailbox mistakes are refused with their code in DEVICE_STATE_CMD (state-mailbox.ts): the
  // driver learns at once, and the device's state is untouched.
  /** DEVICE_STATE SAVE is issued only while STOP shows, LOAD only between FEATURES_OK and DRIVER_OK; refused with its code in DEVICE_STATE_CMD (proposal; docs/provisional-registers.md#device-state). */
  'state-command-not-now': ignore('proposal', 'DEVICE_STATE SAVE only while STOP shows; LOAD only between FEATURES_OK and DRIVER_OK'),
  /** Only SAVE or LOAD is written to DEVICE_STATE_CMD; anything else is refused (proposal; docs/provisional-registers.md#device-state). */
  'state-command-unknown': ignore('proposal', 'write only SAVE or LOAD to DEVICE_STATE_CMD'),
  /** DEVICE_STATE_ADDR and DEVICE_STATE_LEN describe memory the device can reach; otherwise the command is refused (proposal; docs/provisional-registers.md#device-state). */
  'state-mailbox-address': ignore('proposal', 'point DEVICE_STATE_ADDR / LEN at memory the device can reach'),
} as const satisfies Record<string, Rule>;

// device types (blk.ts, net.ts, rng.ts)
const DEVICE_TYPES = {
  /** blk: a request starts with the 16-byte device-readable header and ends with the device-writable status byte; otherwise the device needs a reset (virtio 1.2 §5.2.6). */
  'blk-request-malformed': reset('5.2.6', 'E_BAD_CHAIN', 'blk: a 16-byte device-readable header first, the device-writable status byte last'),
  // Device-type mistakes in a well-formed chain get the answer the device type prescribes.
  /** blk: reads and writes stay within capacity; beyond it they are answered IOERR (virtio 1.2 §5.2.6.1). */
  'blk-beyond-capacity': ignore('5.2.6.1', 'blk: no read or write beyond capacity (answered IOERR)'),
  /** blk: a FLUSH request carries sector 0 (virtio 1.2 §5.2.6.1). */
  'blk-flush-sector': ignore('5.2.6.1', 'blk: sector 0 in a FLUSH request'),
  /** blk: IN/OUT data is a multiple of 512 bytes, GET_ID's buffer 20 bytes, DISCARD/WRITE_ZEROES whole 16-byte ranges; otherwise answered IOERR (virtio 1.2 §5.2.6.1). */
  'blk-data-length': ignore('5.2.6.1', 'blk: IN/OUT data a multiple of 512, GET_ID 20 bytes, DISCARD/WRITE_ZEROES whole 16-byte ranges (answered IOERR)'),
  /** blk: a DISCARD or WRITE_ZEROES holds at most max_discard_seg / max_write_zeroes_seg ranges; more are answered IOERR (virtio 1.2 §5.2.6.1). */
  'blk-too-many-ranges': ignore('5.2.6.1', 'blk: at most max_discard_seg / max_write_zeroes_seg ranges (answered IOERR)'),
  /** blk: a DISCARD range has its unmap flag clear; set, the request is answered UNSUPP (virtio 1.2 §5.2.6.1). */
  'blk-discard-unmap': ignore('5.2.6.1', 'blk: the unmap bit is zero in DISCARD (answered UNSUPP)'),
  /** net: a transmit chain is the 12-byte virtio_net_hdr then the frame, all device-readable; otherwise the device needs a reset (virtio 1.2 §5.1.6.2). */
  'net-tx-malformed': reset('5.1.6.2', 'E_BAD_CHAIN', 'net: a transmit chain is the 12-byte header then the frame, all device-readable'),
  /** net: a transmit header has num_buffers 0, flags 0 unless CSUM, neither DATA_VALID nor RSC_INFO, and gso_type NONE unless the matching HOST_* offload is negotiated (virtio 1.2 §5.1.6.2.1). */
  'net-tx-header': ignore('5.1.6.2.1', 'net: transmit header with num_buffers 0, flags 0 without CSUM, no DATA_VALID / RSC_INFO, gso_type NONE without the HOST_* offload'),
  /** net: with MRG_RXBUF each receive buffer holds at least the 12-byte header (virtio 1.2 §5.1.6.3.1). */
  'net-rx-buffer-small': ignore('5.1.6.3.1', 'net: with MRG_RXBUF every receive buffer holds at least the 12-byte header'),
  /** net: a control command is class, command and data, device-readable, then the device-writable ack byte; otherwise the device needs a reset (virtio 1.2 §5.1.6.5). */
  'net-ctrl-malformed': reset('5.1.6.5', 'E_BAD_CHAIN', 'net: a control command is class, command, data (readable), then the ack byte (writable)'),
  /** rng: a request is made of device-writable buffers only; otherwise the device needs a reset (virtio 1.2 §5.4.6.1). */
  'rng-request-malformed': reset('5.4.6.1', 'E_BAD_CHAIN', 'rng: device-writable buffers only'),
  /** console: a transmitq or control transmitq chain is device-readable only, a control message at least the 8-byte virtio_console_control; otherwise the device needs a reset (virtio 1.2 §5.3.6, §5.3.6.2). */
  'console-tx-malformed': reset('5.3.6', 'E_BAD_CHAIN', 'console: transmit chains device-readable only, control messages at least 8 bytes'),
} as const satisfies Record<string, Rule>;

/**
 * Every driver rule the reference device checks, by id: section, action, the rule in a few words
 * and, for 'needs-reset' rules, the error code of `failure`. Sections are virtio 1.2 unless
 * prefixed "1.4" (SUSPEND), "proposal" (the virtqueue state registers,
 * docs/provisional-registers.md) or "PCI" (PCI Local Bus 3.0).
 */
export const RULES = { ...STATUS, ...REGISTERS, ...NOTIFICATIONS, ...PCI, ...RINGS, ...STATE, ...DEVICE_TYPES } as const;

/** The rules by where the device checks them (each rule in one group). */
export const RULE_GROUPS = {
  /** Device status writes: the order of initialisation, feature negotiation, STOP and SUSPEND (status.ts). */
  'status': Object.keys(STATUS) as (keyof typeof STATUS)[],
  /** Common and device configuration register accesses, queue setup, MSI-X vectors, queue state registers (common-cfg.ts). */
  'registers': Object.keys(REGISTERS) as (keyof typeof REGISTERS)[],
  /** Available buffer notifications and buffers made available while suspended (device.ts, function.ts). */
  'notifications': Object.keys(NOTIFICATIONS) as (keyof typeof NOTIFICATIONS)[],
  /** PCI configuration space: capabilities, the PCI_CFG window, Bus Master (pci/config.ts). */
  'pci': Object.keys(PCI) as (keyof typeof PCI)[],
  /** Split and packed ring contents: addresses, indexes, descriptor chains, indirect tables, event suppression (ring/). */
  'rings': Object.keys(RINGS) as (keyof typeof RINGS)[],
  /** Virtqueue state written at reinit and the DEVICE_STATE mailbox (held.ts, state-mailbox.ts). */
  'state': Object.keys(STATE) as (keyof typeof STATE)[],
  /** Requests of each device type: blk, net, rng (models/). */
  'device-types': Object.keys(DEVICE_TYPES) as (keyof typeof DEVICE_TYPES)[],
} as const;
/** Name of a RULE_GROUPS entry: 'status', 'registers', 'notifications', 'pci', 'rings', 'state' or 'device-types'. */
export type RuleGroup = keyof typeof RULE_GROUPS;

/** A rule's id, a key of RULES such as 'avail-idx-decreased'; a Violation names the rule it records by it. */
export type RuleId = keyof typeof RULES;

/** One rule broken, as the device recorded it. */
export interface Violation {
  /** The rule broken. */
  readonly id: RuleId;
  /** Its spec section, as in RULES (`Rule.section`). */
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
  if (section === 'proposal') return 'the virtqueue state proposal (docs/provisional-registers.md)';
  const [first, rest] = section.split(' ', 2);
  if (first === '1.4') return `virtio 1.4 §${rest}`;
  if (first === 'PCI') return `PCI 3.0 §${rest}`;
  return `virtio 1.2 §${section}`;
}
