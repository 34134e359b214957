// The session protocol's line reader (cli/session/protocol.ts FirstLine): a request or answer is one
// JSON document and '\n', and arrives in chunks of any size. The reader used to append each chunk
// to a string and search the whole string again (decoding each chunk on its own): a 32 MB snapshot
// sent to an agent took seconds, and a UTF-8 character split between two chunks came out as two
// replacement characters. It now searches each chunk once and decodes the line once.

import t from 'tap';
import { FirstLine } from '../../cli/session/protocol.js';

t.test('a line split into many chunks comes out whole, once its newline arrives', (t) => {
  const r = new FirstLine(1 << 20);
  const text = JSON.stringify({ cmd: 'reinit', note: 'x'.repeat(5000) });
  const bytes = Buffer.from(`${text}\n{"next":1}\n`);
  let line: string | null | 'too-long' = null;
  for (let i = 0; i < bytes.length && line === null; i += 7) line = r.push(bytes.subarray(i, i + 7));
  t.equal(line, text, 'the first line, without its newline; what follows is not part of it');
  t.end();
});

t.test('a multi-byte character split between two chunks stays one character', (t) => {
  const r = new FirstLine(1024);
  const bytes = Buffer.from('{"name":"µ€𝄞"}\n');
  const at = bytes.indexOf(0xe2) + 1; // inside the euro sign
  t.equal(r.push(bytes.subarray(0, at)), null, 'incomplete');
  t.equal(r.push(bytes.subarray(at)), '{"name":"µ€𝄞"}');
  t.end();
});

t.test('more than the bound before a newline is too long, also when the newline comes in the same chunk', (t) => {
  const a = new FirstLine(10);
  t.equal(a.push(Buffer.from('12345')), null);
  t.equal(a.push(Buffer.from('678901')), 'too-long', '11 bytes and no newline');
  const b = new FirstLine(10);
  t.equal(b.push(Buffer.from('12345678901\n')), 'too-long', '11 bytes before the newline');
  const c = new FirstLine(10);
  t.equal(c.push(Buffer.from('1234567890\nmore after the line')), '1234567890', 'exactly the bound: taken');
  t.end();
});

t.test('an empty line and a newline alone', (t) => {
  t.equal(new FirstLine(10).push(Buffer.from('\n')), '');
  t.end();
});
