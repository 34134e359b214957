// A careless user and a hostile device against the console driver: what broke once stays tested.

import t from 'tap';
import { bringUp, until } from '../support/console.js';

t.test('close() with writes in flight: the write callback gets E_CLOSED, the port closes without an \'error\' (no listener needed)', async (t) => {
  const { con } = await bringUp(t, { multiport: false, loopback: false, completion: 'manual' });
  const port = con.ports.get(0)!;
  const errors: Error[] = [];
  let writeError: (Error & { code?: string }) | null | undefined;
  let closed = false;
  // Listening for 'error' only to count: without a listener an 'error' would end the process.
  port.on('error', (e) => errors.push(e));
  port.on('close', () => (closed = true));
  port.write(Buffer.alloc(100_000), (e) => (writeError = e));
  await until(() => false, 20);
  await con.close();
  await until(() => closed && writeError !== undefined);
  t.equal(writeError?.code, 'E_CLOSED', 'the pending write fails with E_CLOSED');
  t.same(errors.map((e) => (e as { code?: string }).code), [], 'no \'error\' event: closing the driver is the user\'s own act');
  t.ok(closed, '\'close\' follows');
});

