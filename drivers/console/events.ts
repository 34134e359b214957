// The device's control messages (virtio 1.2 §5.3.6.2), checked before any is acted on: the device
// is untrusted, so a port id at or beyond max_nr_ports, an event the spec does not define for the
// device to send, a message about a port not added, a second DEVICE_ADD, a name longer than
// CONSOLE_MAX_NAME_LEN or a RESIZE without its size is refused with an error (the driver counts it
// and goes on); nothing here throws.

import { CONSOLE_MAX_NAME_LEN, ConsoleEvent, ConsoleResize } from '../../lib/spec/index.js';
import { RequestError, type UvirtioError } from '../../lib/errors.js';
import type { ControlMessage } from './control.js';
import type { ConsolePort } from './port.js';

/** What handleControl acts through (the driver's ports). */
export interface ControlTarget {
  /** The live port with this number. */
  port(id: number): ConsolePort | undefined;
  /** DEVICE_ADD: false when the port is there already (a duplicate). */
  added(id: number): boolean;
  /** DEVICE_REMOVE: false when there is no such port. */
  removed(id: number): boolean;
  /** RESIZE with its virtio_console_resize bytes (at least 4). */
  resize(port: ConsolePort, extra: Uint8Array): void;
  /** CONSOLE_PORT: the driver answers PORT_OPEN 1 (§5.3.6.2, a MUST). */
  consolePort(port: ConsolePort): void;
}

const bad = (m: ControlMessage, why: string): UvirtioError =>
  new RequestError('E_DEVICE_BAD_REPLY', `console control message (port ${m.id}, event ${m.event}, value ${m.value}): ${why}`, 'the message was ignored');

/** Acts on one control message from the device; returns why it was refused, or undefined. */
export function handleControl(m: ControlMessage, maxPorts: number, to: ControlTarget): UvirtioError | undefined {
  if (m.id >= maxPorts) return bad(m, `port ${m.id} is not below max_nr_ports ${maxPorts}`);
  if (m.event === ConsoleEvent.DEVICE_ADD) return to.added(m.id) ? undefined : bad(m, 'DEVICE_ADD for a port already added');
  if (m.event === ConsoleEvent.DEVICE_REMOVE) return to.removed(m.id) ? undefined : bad(m, 'DEVICE_REMOVE for a port not added');
  const known = [ConsoleEvent.CONSOLE_PORT, ConsoleEvent.RESIZE, ConsoleEvent.PORT_OPEN, ConsoleEvent.PORT_NAME] as number[];
  if (!known.includes(m.event)) return bad(m, 'not an event a device sends');
  const port = to.port(m.id);
  if (!port) return bad(m, 'the port was not added');
  switch (m.event) {
    case ConsoleEvent.CONSOLE_PORT:
      port.console = true;
      to.consolePort(port);
      return undefined;
    case ConsoleEvent.RESIZE:
      if (m.extra.length < ConsoleResize.LEN) return bad(m, `RESIZE with ${m.extra.length} of the ${ConsoleResize.LEN} size bytes`);
      to.resize(port, m.extra);
      return undefined;
    case ConsoleEvent.PORT_OPEN: {
      const open = m.value === 1;
      if (m.value > 1) return bad(m, 'PORT_OPEN value is neither 0 nor 1');
      if (port.hostOpen !== open) {
        port.hostOpen = open;
        port.emit(open ? 'host-open' : 'host-close');
      }
      return undefined;
    }
    default: {
      if (m.extra.length > CONSOLE_MAX_NAME_LEN) return bad(m, `a name of more than ${CONSOLE_MAX_NAME_LEN} bytes`);
      // The spec's name has no NUL terminator; QEMU sends one: the name ends at the first NUL.
      const nul = m.extra.indexOf(0);
      port.name = new TextDecoder('utf-8', { fatal: false }).decode(nul < 0 ? m.extra : m.extra.subarray(0, nul));
      return undefined;
    }
  }
}
