// NetDriver.send(frame, header) and encodeNetHeader(header, into) take the virtio_net_hdr fields as
// an object (Partial<NetHeader>), but a misspelt field (`gsoTyp`, `csumStrat`) is ignored and the
// frame goes out with that field 0 — the caller asked for GSO or a checksum offload and silently
// got none — and a value a le16 / u8 field cannot hold (gsoSize 0x10000, flags 0x101, csumStart
// -1, a string) is truncated into another value. Every other public options object refuses an
// unknown key (README failure table: "an options object with a key the call does not take").
// What should happen: E_INVALID_ARGUMENT naming the key (closest spelling as the hint) or the
// field and its range, before anything is sent.

import t from 'tap';
import { NetDriver, encodeNetHeader } from '../../drivers/net/index.js';
import { createSimDevice } from '../../lib/sim/index.js';
import { VirtioPciTransport } from '../../lib/transport/pci/transport.js';
import { codeOf, settledCode } from '../support/codes.js';

const frame = (): Uint8Array => new Uint8Array(60).fill(0x11);

t.test('send(): a misspelt header field is refused E_INVALID_ARGUMENT, nothing sent', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => net.close());
  for (const header of [{ gsoTyp: 4 }, { csumStrat: 14, csumOffset: 16, flags: 1 }, { numBufers: 1 }]) {
    t.equal(await settledCode(net.send(frame(), header as never), 3000), 'E_INVALID_ARGUMENT', `${JSON.stringify(header)} is refused`);
  }
  t.equal(await settledCode(net.send(frame(), { gsoType: 0, flags: 0 }), 3000), 'ok', 'a header of known fields is sent');
});

t.test('send(): a header value its field cannot hold is refused, not truncated', async (t) => {
  const sim = createSimDevice({ type: 'net' });
  const net = await NetDriver.open(new VirtioPciTransport(sim.fn));
  t.teardown(() => net.close());
  for (const header of [{ gsoSize: 0x10000 }, { flags: 0x101 }, { csumStart: -1 }, { hdrLen: 1.5 }, { gsoType: '4' }]) {
    t.equal(await settledCode(net.send(frame(), header as never), 3000), 'E_INVALID_ARGUMENT', `${JSON.stringify(header)} is refused`);
  }
});

t.test('encodeNetHeader(): a misspelt field or a value out of range is refused', async (t) => {
  const into = new Uint8Array(12);
  t.equal(codeOf(() => encodeNetHeader({ csumStrat: 14 } as never, into)), 'E_INVALID_ARGUMENT', 'csumStrat refused');
  t.equal(codeOf(() => encodeNetHeader({ gsoSize: 70_000 }, into)), 'E_INVALID_ARGUMENT', 'gsoSize 70000 refused');
});
