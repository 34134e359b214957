// virtio-console (virtio 1.2 §5.3): feature bits, configuration layout, queue numbering and the
// multiport control messages. Ground layer.

/** virtio-console feature bits (virtio 1.2 §5.3.3). */
export const ConsoleFeature = {
  /** cols and rows in the configuration are valid (the console size). */
  SIZE: 0,
  /** max_nr_ports is valid, the control queues exist and ports are announced on them. */
  MULTIPORT: 1,
  /** The driver may write a byte to emerg_wr before any queue is set up. */
  EMERG_WRITE: 2,
} as const;

/**
 * Offsets in struct virtio_console_config (virtio 1.2 §5.3.4), bytes: cols then rows, as in 1.2,
 * Linux's uapi header and QEMU (a later draft of the spec lists rows first; the devices do not).
 */
export const ConsoleConfig = {
  /** le16: columns of the console (VIRTIO_CONSOLE_F_SIZE). */
  COLS: 0,
  /** le16: rows of the console (VIRTIO_CONSOLE_F_SIZE). */
  ROWS: 2,
  /** le32: the most ports the device can hold (VIRTIO_CONSOLE_F_MULTIPORT). */
  MAX_NR_PORTS: 4,
  /** le32, written by the driver: one character for port 0, without any queue (VIRTIO_CONSOLE_F_EMERG_WRITE). */
  EMERG_WR: 8,
  /** Length of struct virtio_console_config, bytes. */
  LEN: 12,
} as const;

/** Queue numbering (virtio 1.2 §5.3.2): receiveq / transmitq of port 0, the control pair, then two per port from port 1. */
export const ConsoleQueue = {
  /** receiveq(port0). */
  RECEIVEQ0: 0,
  /** transmitq(port0). */
  TRANSMITQ0: 1,
  /** control receiveq (device → driver control messages; MULTIPORT only). */
  CONTROL_RECEIVEQ: 2,
  /** control transmitq (driver → device control messages; MULTIPORT only). */
  CONTROL_TRANSMITQ: 3,
} as const;

/** The receive queue of port `port` (virtio 1.2 §5.3.2): 0 for port 0, 2 + 2·port from port 1. */
export function consoleReceiveq(port: number): number {
  return port === 0 ? ConsoleQueue.RECEIVEQ0 : 2 + 2 * port;
}
/** The transmit queue of port `port` (virtio 1.2 §5.3.2): 1 for port 0, 3 + 2·port from port 1. */
export function consoleTransmitq(port: number): number {
  return consoleReceiveq(port) + 1;
}
/** Queues of a device with `maxNrPorts` ports (virtio 1.2 §5.3.2): 2 without MULTIPORT, else 2·(max_nr_ports + 1). */
export function consoleQueueCount(multiport: boolean, maxNrPorts: number): number {
  return multiport ? 2 * (maxNrPorts + 1) : 2;
}

/** struct virtio_console_control (virtio 1.2 §5.3.6.2): le32 id, le16 event, le16 value; 8 bytes. */
export const ConsoleControlMsg = {
  /** le32: the port number. */
  ID: 0,
  /** le16: a {@link ConsoleEvent}. */
  EVENT: 4,
  /** le16: the event's value (1 / 0 for ready and open, …). */
  VALUE: 6,
  /** Length of the message without what follows it (PORT_NAME's name, RESIZE's size), bytes. */
  LEN: 8,
} as const;

/** Control events (virtio 1.2 §5.3.6.2). */
export const ConsoleEvent = {
  /** Driver → device: the driver is ready (value 1) or failed to initialise (0). */
  DEVICE_READY: 0,
  /** Device → driver: port `id` was added. */
  DEVICE_ADD: 1,
  /** Device → driver: port `id` was removed. */
  DEVICE_REMOVE: 2,
  /** Driver → device: port `id` is ready (value 1) or failed (0). */
  PORT_READY: 3,
  /** Device → driver: port `id` is a console. */
  CONSOLE_PORT: 4,
  /** Device → driver: the console changed size; a {@link ConsoleResize} follows the message. */
  RESIZE: 5,
  /** Both ways: port `id` was opened (value 1) or closed (0) on the sending side. */
  PORT_OPEN: 6,
  /** Device → driver: port `id`'s name follows the message (not NUL-terminated). */
  PORT_NAME: 7,
} as const;

/**
 * struct virtio_console_resize after a RESIZE message (virtio 1.2 §5.3.6.2): le16 cols, le16 rows,
 * as the spec has it (Linux's driver reads the two the other way round).
 */
export const ConsoleResize = {
  /** le16: columns. */
  COLS: 0,
  /** le16: rows. */
  ROWS: 2,
  /** Length, bytes. */
  LEN: 4,
} as const;

/** The longest port name uvirtio takes in a PORT_NAME message (bytes; Linux takes what fits a page, QEMU sends what it was given). */
export const CONSOLE_MAX_NAME_LEN = 255;

/**
 * A virtio_console_control message (virtio 1.2 §5.3.6.2) with `extra` after it (PORT_NAME's
 * name, RESIZE's virtio_console_resize): 8 + extra.length bytes, little-endian.
 */
export function encodeConsoleControl(id: number, event: number, value: number, extra: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(ConsoleControlMsg.LEN + extra.length);
  const v = new DataView(out.buffer);
  v.setUint32(ConsoleControlMsg.ID, id >>> 0, true);
  v.setUint16(ConsoleControlMsg.EVENT, event & 0xffff, true);
  v.setUint16(ConsoleControlMsg.VALUE, value & 0xffff, true);
  out.set(extra, ConsoleControlMsg.LEN);
  return out;
}

/** VIRTIO_CONSOLE_BAD_ID: the id of a control message about no port (DEVICE_READY), as Linux sends it. */
export const CONSOLE_BAD_ID = 0xffffffff;
