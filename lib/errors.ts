// One error hierarchy for the whole SDK. Every error has a stable `code` a script can match on and
// a `hint` a person can act on. Codes are part of the public API: add new ones, never rename.

/**
 * Every error code uvirtio throws. Stable: scripts match on them; new codes are added, none renamed.
 * Grouped by where they arise; the E_SNAPSHOT_* codes are described in docs/snapshot.md#validation.
 */
export type ErrorCode =
  // usage and input
  | 'E_INVALID_ARGUMENT'
  | 'E_BAD_ADDRESS'
  // feature negotiation and the status machine (virtio 1.2 §3.1)
  | 'E_FEATURE_MISSING'
  | 'E_FEATURES_NOT_OK'
  | 'E_DEVICE_NEEDS_RESET'
  | 'E_DEVICE_FAILED'
  | 'E_RESET_TIMEOUT'
  | 'E_BAD_STATE'
  | 'E_CLOSED'
  // transport discovery
  | 'E_NOT_VIRTIO'
  | 'E_CAP_MISSING'
  | 'E_CAP_INVALID'
  | 'E_QUEUE_UNAVAILABLE'
  | 'E_CONFIG_UNSTABLE'
  // memory
  | 'E_DMA_EXHAUSTED'
  | 'E_DMA_RANGE'
  /** free() of DMA memory a live virtqueue still uses (a chain in flight, its ring, an indirect table); nothing was freed. */
  | 'E_DMA_IN_USE'
  // virtqueues
  | 'E_QUEUE_FULL'
  | 'E_QUEUE_BROKEN'
  | 'E_BAD_CHAIN'
  // a device that broke the rules (each its own code: docs/architecture.md#the-device-is-not-trusted)
  | 'E_DEVICE_BAD_USED_ID'
  | 'E_DEVICE_BAD_USED_LEN'
  | 'E_DEVICE_USED_INDEX_JUMP'
  | 'E_DEVICE_BAD_PACKED_FLAGS'
  /** The device wrote fewer bytes than the request needs (used len below what its reply takes; virtio 1.2 §2.7.8.1). */
  | 'E_DEVICE_SHORT_USED_LEN'
  /** A device-written reply field outside what the spec allows (a blk status byte that is not OK/IOERR/UNSUPP, …). */
  | 'E_DEVICE_BAD_REPLY'
  /** Queue state the device reported that the driver's own view of its rings rules out. */
  | 'E_DEVICE_BAD_STATE'
  /** Requests in flight saw no progress within the request timeout: the device is not answering. */
  | 'E_DEVICE_UNRESPONSIVE'
  // requests
  | 'E_REQUEST_TIMEOUT'
  | 'E_REQUEST_CANCELLED'
  /** A completion callback (RequestQueue.submitCb) threw; the queue went on (reported as a process warning unless RequestQueue.onCallbackError is set). Also the warning of an eventfd handler that threw (lib/sys/eventfd-watch.ts; delivery went on), and the error of a stop whose preparation (StopPreparation) threw or rejected with something other than a UvirtioError (the device was not asked to stop). */
  | 'E_CALLBACK_THREW'
  /** A bug in uvirtio: something threw that is not a UvirtioError, reported across a process boundary (a session agent's answer). */
  | 'E_INTERNAL'
  /** The operation was interrupted (SIGINT/SIGTERM, an AbortSignal). */
  | 'E_INTERRUPTED'
  | 'E_IO_ERROR'
  | 'E_UNSUPPORTED'
  | 'E_OUT_OF_RANGE'
  | 'E_READ_ONLY'
  | 'E_FRAME_TOO_LARGE'
  // the operating system (lib/sys) and VFIO (lib/vfio)
  | 'E_SYSCALL'
  | 'E_PERMISSION'
  | 'E_NO_DEVICE'
  | 'E_DRIVER_BOUND'
  | 'E_NOT_BOUND'
  | 'E_GROUP_NOT_VIABLE'
  | 'E_VFIO_UNAVAILABLE'
  | 'E_NO_IOMMU'
  | 'E_REGION_MISSING'
  | 'E_IRQ_MISSING'
  // vhost-user (lib/transport/vhost-user)
  | 'E_VHOST_UNREACHABLE'
  | 'E_VHOST_NOT_SOCKET'
  | 'E_VHOST_PROTOCOL'
  | 'E_VHOST_REFUSED'
  | 'E_VHOST_TIMEOUT'
  | 'E_VHOST_LOST'
  /** The back-end still serves another front-end (it takes one connection at a time). */
  | 'E_VHOST_BUSY'
  // vhost-vdpa (lib/transport/vhost-vdpa)
  /** The device's IOTLB refused a mapping message (outside VHOST_VDPA_GET_IOVA_RANGE, overlapping, not shared memory). */
  | 'E_VDPA_IOTLB'
  // stop / virtqueue state / reinit
  | 'E_STATE_UNSUPPORTED'
  | 'E_STATE_NOT_STOPPED'
  | 'E_STOP_TIMEOUT'
  | 'E_SUSPEND_TIMEOUT'
  | 'E_STATE_REFUSED'
  // snapshot files (untrusted input: each fault its own code)
  | 'E_SNAPSHOT_NOT_JSON'
  | 'E_SNAPSHOT_TRUNCATED'
  | 'E_SNAPSHOT_VERSION'
  | 'E_SNAPSHOT_SCHEMA'
  | 'E_SNAPSHOT_DEVICE_TYPE'
  | 'E_SNAPSHOT_QUEUE_COUNT'
  | 'E_SNAPSHOT_QUEUE_SIZE'
  | 'E_SNAPSHOT_FEATURES'
  | 'E_SNAPSHOT_INDEX'
  | 'E_SNAPSHOT_USED_AHEAD'
  | 'E_SNAPSHOT_ADDRESS'
  /** The snapshot disagrees with what the driver knows about its own rings (indices, requests in flight). */
  | 'E_SNAPSHOT_INCONSISTENT'
  | 'E_SNAPSHOT_IO'
  /**
   * The device is held by another: another process (a vhost-vdpa device open elsewhere, a host
   * driver), or, in this process, another open VirtioDevice (a driver's) on the same transport —
   * a transport has one driver until that one is closed. The caller's to resolve (CLI exit 2).
   */
  | 'E_DEVICE_IN_USE'
  // CLI sessions
  | 'E_NO_SESSION'
  | 'E_SESSION_EXISTS'
  | 'E_SESSION_AMBIGUOUS';

/** The hint an error of these codes carries when the place that throws it has nothing more precise. */
const GENERIC_HINTS: Partial<Record<ErrorCode, string>> = {
  E_INVALID_ARGUMENT: 'the message names the value and what is allowed; see the API documentation',
  E_BAD_STATE: 'check the order of calls: device.phase says where the device is (open → setupQueue → driverOk → stop → snapshot → reinit or resume; needs-reset → recover)',
  E_CLOSED: 'open it again; a closed device, driver or transport takes no more calls',
  E_CAP_MISSING: 'the device or the platform lacks it; `uvirtio info` shows what the device offers',
  E_STATE_UNSUPPORTED: '`uvirtio info` lists the stop/state mechanisms the device supports',
  E_QUEUE_UNAVAILABLE: '`uvirtio info` lists the queues the device has',
  E_DMA_EXHAUSTED: 'free regions you no longer need, or give the device more DMA memory',
};

/** The root of uvirtio's errors: a stable {@link ErrorCode}, a message naming the fault, and a hint. */
export class UvirtioError extends Error {
  /** The stable code a script matches on. */
  readonly code: ErrorCode;
  /** What a person can do about it; the code's generic hint when the thrower has nothing more precise. */
  readonly hint: string | undefined;
  /**
   * @param code the stable code.
   * @param message what went wrong, naming the value or device.
   * @param hint what to do about it (default: the code's generic hint, if it has one).
   * @param options `cause`: the underlying error.
   */
  constructor(code: ErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.hint = hint ?? GENERIC_HINTS[code];
  }
  /** `E_CODE: message (hint: …)` — the one-line form the CLI prints. */
  toLine(): string {
    return `${this.code}: ${this.message}${this.hint ? ` (hint: ${this.hint})` : ''}`;
  }
  /** The `--json` form the CLI prints: code, message and (when there is one) hint. */
  toJSON(): {
    /** The stable code. */
    code: ErrorCode;
    /** The message. */
    message: string;
    /** The hint, when there is one. */
    hint?: string;
  } {
    return { code: this.code, message: this.message, ...(this.hint ? { hint: this.hint } : {}) };
  }
}

/** Feature negotiation, status machine and transport discovery. */
export class DeviceError extends UvirtioError {}

/** The caller broke a rule of the API (bad size, bad segment, wrong state). */
export class UsageError extends UvirtioError {}

/** DMA memory could not be had or an address is outside what the driver owns. */
export class DmaError extends UvirtioError {}

/**
 * A virtqueue fault. When `device` is true the device broke the ring protocol; the queue is then
 * broken for good and every pending request is rejected with this error.
 */
export class VirtqueueError extends UvirtioError {
  /** Index of the queue the fault is on. */
  readonly queue: number;
  /** True when the device broke the ring protocol (an E_DEVICE_* code); false for a driver-side fault. */
  readonly device: boolean;
  /**
   * @param code the stable code.
   * @param queue the queue's index; the message is prefixed with it.
   * @param message what went wrong.
   * @param hint what to do about it.
   * @param device whether the device broke the protocol.
   */
  constructor(code: ErrorCode, queue: number, message: string, hint?: string, device = false) {
    super(code, `queue ${queue}: ${message}`, hint, undefined);
    this.queue = queue;
    this.device = device;
  }
}

/** A request the device answered with an error status, or that was refused before it reached the device. */
export class RequestError extends UvirtioError {}

/** A snapshot file or object that cannot be used; the message names the field. */
export class SnapshotError extends UvirtioError {}

/** A wait on the device that did not end in time. The message names what was awaited and for how long. */
export class TimeoutError extends UvirtioError {}

/** Whether `e` is one of uvirtio's errors (any subclass of {@link UvirtioError}). */
export function isUvirtioError(e: unknown): e is UvirtioError {
  return e instanceof UvirtioError;
}
