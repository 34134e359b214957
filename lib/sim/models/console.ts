// virtio-console in the reference device (virtio 1.2 §5.3): its options, its address options
// (sim:console?multiport=0&ports=3&loopback=0…), its handle with the host side of every port, and
// how it builds its model (console-model.ts). Registered with one line in lib/sim/models/all.ts;
// its driver is drivers/console/.

import { ConsoleControlMsg, DeviceType } from '../../spec/index.js';
import { UsageError } from '../../errors.js';
import { checkValue, flag, int, optionsObject, type OptionKeys, type OptionValues } from '../../util/options.js';
import { safeIsArray, shown } from '../../util/shown.js';
import { SimDeviceHandle, type SimCommonOptions, type SimDevice, type SimModelType } from '../common.js';
import type { SimPciFunction } from '../pci/function.js';
import { ConsoleModel } from './console-model.js';
import type { ConsolePortSpec, SimConsolePort } from './console-port.js';

export type { ConsolePortSpec, SimConsolePort } from './console-port.js';

/** A console size in character cells (struct virtio_console_config cols / rows, virtio 1.2 §5.3.4). */
export interface SimConsoleSize {
  /** Columns (le16). */
  cols: number;
  /** Rows (le16). */
  rows: number;
}

/** createSimDevice({ type: 'console', … }). */
export interface SimConsoleOptions extends SimCommonOptions {
  /** Selects virtio-console (device id 3, virtio 1.2 §5.3). */
  type: 'console';
  /** Offer VIRTIO_CONSOLE_F_MULTIPORT: control queues and several ports (default true, as QEMU's virtio-serial). */
  multiport?: boolean;
  /** max_nr_ports with MULTIPORT (default 8, at most 31 as QEMU's default). */
  maxPorts?: number;
  /** The ports there from the start, or how many (ids 0…N-1; port 0 a console, the others named "uvirtio.port.N"). Default 2 with MULTIPORT; port 0 only without. */
  ports?: number | readonly ConsolePortSpec[];
  /** Offer VIRTIO_CONSOLE_F_EMERG_WRITE (default true). */
  emergWrite?: boolean;
  /** Ports echo what the driver writes (default true; false: a test reads and writes each port's host side). */
  loopback?: boolean;
  /** cols and rows of the configuration (VIRTIO_CONSOLE_F_SIZE; default 80 × 25). */
  size?: SimConsoleSize;
  /**
   * Model QEMU 7.2's virtio-serial on a chardev (default 0: off). The device sizes its next read
   * of the host's bytes from the receive space free at the end of its last pass, and that size
   * holds for this many ms (QEMU: until its main loop next wakes). When the driver closes the port
   * (PORT_OPEN 0) or resets the device within that time, the next bytes the host sends are read
   * and dropped (counted in SimConsolePort.dropped), as QEMU's `virtio_serial_write` drops them
   * for a port the guest does not have open. A driver that lets the device use up its posted
   * receive buffers first loses nothing (ConsoleDriver.stop).
   */
  staleReadMs?: number;
}

/** The handle of a reference virtio-console: the host side of its ports and the controls of a test. */
export interface SimConsoleDevice extends SimDevice {
  /** Always 'console': narrows an AnySimDevice. */
  readonly type: 'console';
  /** The port with number `id`, or undefined. */
  port(id: number): SimConsolePort | undefined;
  /** Port numbers there now, ascending. */
  readonly portIds: readonly number[];
  /** max_nr_ports (1 without MULTIPORT). */
  readonly maxPorts: number;
  /** Adds a port (DEVICE_ADD to a ready driver). Throws E_INVALID_ARGUMENT for a number taken or not below max_nr_ports, for a spec that is not an object or has a key ConsolePortSpec does not have, a name that is not a string (or longer than a page's control message) and flags that are not booleans; each field is read once. */
  addPort(spec?: ConsolePortSpec): SimConsolePort;
  /** Removes a port (DEVICE_REMOVE to a ready driver); false when there is none. */
  removePort(id: number): boolean;
  /** New console size in character cells: the configuration changes and, with MULTIPORT, console ports get RESIZE. Throws E_INVALID_ARGUMENT for a value that is not an integer 0–65535 (le16, §5.3.4). */
  resize(cols: number, rows: number): void;
  /** Puts raw bytes on the control receiveq as a control message: a hostile or buggy device, for tests. */
  injectControl(message: Uint8Array): void;
  /** Characters the driver wrote to emerg_wr (EMERG_WRITE), in order. */
  readonly emergency: Uint8Array;
  /** Whether the driver sent DEVICE_READY 1 since the last reset. */
  readonly driverReady: boolean;
  /** Control messages from the driver that the device could not use (unknown event, no such port). */
  readonly badControl: number;
}

const MAX_PORTS = int(1, 31);
/** sim:console?… options (besides the common ones, lib/sim/open.ts). */
const ADDRESS_OPTIONS = { multiport: flag(), ports: MAX_PORTS, maxports: MAX_PORTS, loopback: flag(), emerg: flag() };

/** virtio-console as the reference device's registry (models/index.ts) knows it. */
export const console: SimModelType<SimConsoleOptions, SimConsoleDevice> = {
  name: 'console',
  deviceId: DeviceType.CONSOLE,
  /** Communication controller / other, as QEMU's virtio-serial-pci. */
  classCode: 0x078000,
  optionKeys: { multiport: true, maxPorts: true, ports: true, emergWrite: true, loopback: true, size: true, staleReadMs: true },
  addressOptions: ADDRESS_OPTIONS,
  fromAddress: (v: OptionValues<typeof ADDRESS_OPTIONS>) => ({
    ...(v.multiport !== undefined ? { multiport: v.multiport } : {}),
    ...(v.ports !== undefined ? { ports: v.ports } : {}),
    ...(v.maxports !== undefined ? { maxPorts: v.maxports } : {}),
    ...(v.loopback !== undefined ? { loopback: v.loopback } : {}),
    ...(v.emerg !== undefined ? { emergWrite: v.emerg } : {}),
  }),
  create: (options) => {
    const multiport = options.multiport ?? true;
    const maxPorts = multiport ? checkValue(MAX_PORTS, options.maxPorts ?? 8, 'maxPorts') : 1;
    const ports = portSpecs(options.ports ?? (multiport ? 2 : 1), multiport, maxPorts);
    const size = options.size === undefined ? { cols: 80, rows: 25 } : optionsObject(options.size, 'createSimDevice size', { cols: true, rows: true });
    const model = new ConsoleModel({
      multiport, maxNrPorts: maxPorts, ports: [], emergWrite: options.emergWrite ?? true, loopback: options.loopback ?? true, staleReadMs: checkValue(int(0, 60_000), options.staleReadMs ?? 0, 'staleReadMs'),
      cols: checkValue(int(0, 0xffff), size.cols, 'size.cols'), rows: checkValue(int(0, 0xffff), size.rows, 'size.rows'),
    });
    for (const spec of ports) addPort(model, spec);
    return { model, handle: (fn) => new SimConsoleHandle(fn, model) };
  },
};

/** ConsolePortSpec's keys: any other is refused (lib/util/options.ts optionsObject). */
const PORT_SPEC_KEYS: OptionKeys<ConsolePortSpec> = { id: true, name: true, console: true, hostOpen: true, loopback: true };

/**
 * The ports option as port specs, each a copy read once (the checks here and the model's read the
 * same values). Throws E_INVALID_ARGUMENT for a count out of range, something neither a count nor
 * an array, a spec with a key ConsolePortSpec does not have, and a port other than 0 without MULTIPORT.
 */
function portSpecs(ports: number | readonly ConsolePortSpec[], multiport: boolean, maxPorts: number): readonly ConsolePortSpec[] {
  if (typeof ports !== 'number' && !safeIsArray(ports)) {
    throw new UsageError('E_INVALID_ARGUMENT', `ports must be a number of ports or an array of port specs, got ${shown(ports)}`, 'leave it out for the default ports');
  }
  const specs = typeof ports === 'number'
    ? Array.from({ length: checkValue(int(1, maxPorts), ports, `ports (max_nr_ports ${maxPorts})`) }, (_, id) => (id === 0 ? { id } : { id, name: `uvirtio.port.${id}` }))
    : Array.from(ports as readonly ConsolePortSpec[], (spec, i) => portSpec(spec, `createSimDevice ports[${i}]`));
  if (!multiport && specs.some((s) => (s.id ?? 0) !== 0)) {
    throw new UsageError('E_INVALID_ARGUMENT', 'without MULTIPORT a console has port 0 only (virtio 1.2 §5.3.6)', 'set multiport, or give one port');
  }
  return specs;
}

/** The longest PORT_NAME the device sends: its control message fits a page, as Linux's control buffers (bytes, UTF-8). */
const MAX_PORT_NAME_BYTES = 4096 - ConsoleControlMsg.LEN;

/**
 * A port spec read once into a copy and its values checked: E_INVALID_ARGUMENT naming the field
 * for a key ConsolePortSpec does not have, a name that is not a string or longer than
 * MAX_PORT_NAME_BYTES, and console / hostOpen / loopback that are not booleans (the id is checked
 * against max_nr_ports when the port is added).
 */
function portSpec(given: ConsolePortSpec, what: string): ConsolePortSpec {
  const spec = optionsObject(given, what, PORT_SPEC_KEYS);
  const { name } = spec;
  if (name !== undefined && (typeof name !== 'string' || new TextEncoder().encode(name).length > MAX_PORT_NAME_BYTES)) {
    throw new UsageError('E_INVALID_ARGUMENT', `${what}.name must be a string of at most ${MAX_PORT_NAME_BYTES} UTF-8 bytes, got ${shown(name)}`,
      'leave it out for a port without PORT_NAME');
  }
  for (const key of ['console', 'hostOpen', 'loopback'] as const) {
    if (spec[key] !== undefined && typeof spec[key] !== 'boolean') {
      throw new UsageError('E_INVALID_ARGUMENT', `${what}.${key} must be true or false, got ${shown(spec[key])}`, 'leave it out for the default');
    }
  }
  return spec;
}

function addPort(model: ConsoleModel, spec: ConsolePortSpec): SimConsolePort {
  try {
    return model.addPort(spec);
  } catch (e) {
    throw new UsageError('E_INVALID_ARGUMENT', `cannot add port: ${(e as Error).message}`, 'give a free port number below max_nr_ports');
  }
}

class SimConsoleHandle extends SimDeviceHandle implements SimConsoleDevice {
  readonly type = 'console';
  constructor(fn: SimPciFunction, private readonly model: ConsoleModel) {
    super(fn);
  }
  port(id: number): SimConsolePort | undefined {
    return this.model.ports.get(id);
  }
  get portIds(): readonly number[] {
    return [...this.model.ports.keys()].sort((a, b) => a - b);
  }
  get maxPorts(): number {
    return this.model.maxNrPorts;
  }
  addPort(spec: ConsolePortSpec = {}): SimConsolePort {
    return addPort(this.model, portSpec(spec, 'addPort spec'));
  }
  removePort(id: number): boolean {
    return this.model.removePort(id);
  }
  resize(cols: number, rows: number): void {
    // le16 fields (§5.3.4): checked as createSimDevice's size is.
    this.model.resize(checkValue(int(0, 0xffff), cols, 'resize cols'), checkValue(int(0, 0xffff), rows, 'resize rows'));
  }
  injectControl(message: Uint8Array): void {
    this.model.injectControl(message);
  }
  get emergency(): Uint8Array {
    return Uint8Array.from(this.model.emergency);
  }
  get driverReady(): boolean {
    return this.model.driverReady;
  }
  get badControl(): number {
    return this.model.badControl;
  }
}
