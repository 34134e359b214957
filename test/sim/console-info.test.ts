// `uvirtio info` on a console (issue 15 item 2): the feature bits by name (SIZE|MULTIPORT|
// EMERG_WRITE, virtio 1.2 §5.3.3) and the configuration fields their features make valid (§5.3.4).

import t from 'tap';
import { uvSync } from '../support/cli.js';

t.test('info --json: console feature names and cols / rows / max_nr_ports / emerg_wr', async (t) => {
  const r = uvSync({}, process.cwd(), ['info', 'sim:console?maxports=31', '--json']);
  t.equal(r.status, 0, r.stderr);
  const out = r.json();
  t.match(out, { type: 'console', deviceType: 3, config: { cols: 80, rows: 25, max_nr_ports: 31, emerg_wr: /write-only/ } });
  t.match(out.offeredNames, /^SIZE\|MULTIPORT\|EMERG_WRITE\|/);
  t.equal((out.queues as unknown[]).length, 64, '2 × (max_nr_ports + 1) queues (§5.3.2)');
});

t.test('info: without MULTIPORT and EMERG_WRITE, neither is named nor their fields shown', async (t) => {
  const r = uvSync({}, process.cwd(), ['info', 'sim:console?multiport=0&emerg=0']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /offered features: SIZE\|INDIRECT_DESC/);
  t.match(r.stdout, /cols: 80\n {2}rows: 25\n/);
  t.notMatch(r.stdout, /max_nr_ports|emerg_wr|MULTIPORT|bit1|bit2/);
});
