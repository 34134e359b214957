// A front-end process for the signal tests (sigint.test.ts): it waits on the back-end at `stage`
// and prints "waiting" once it does; SIGINT makes it exit 130, as the CLI does. A front-end that
// waited on the main thread would run the handler only when that wait ended.
//   node front-end-child.js ADDRESS open|requests|stop
import { BlkDriver } from '../../drivers/blk/index.js';
import { openTransport } from '../../lib/open.js';

process.on('SIGINT', () => process.exit(130));
const [address, stage] = process.argv.slice(2) as [string, string];
if (stage === 'open') {
  console.log('waiting');
  await openTransport(address);
} else {
  const dev = await openTransport(address);
  const blk = await BlkDriver.open(dev.transport, { interrupts: 'auto' });
  const writes = Array.from({ length: 4 }, (_, i) => blk.write(i * 8, new Uint8Array(512)));
  await new Promise((r) => setTimeout(r, 20));
  console.log('waiting');
  await (stage === 'stop' ? blk.stop({ mechanism: 'backend' }) : Promise.all(writes));
}
console.log('the wait ended without the signal');
