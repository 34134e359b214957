// lib/util/shown.ts names a caller's value in an error message. Strings were shown as they were:
// "got 80" for the string '80' read like the number (a breaker's report: resize('80', 25) said
// "must be an integer from 0 to 65535, got 80"), and a string with a newline or a terminal escape
// went into the message raw, so a caller's value could forge a line of a log. Strings are now
// quoted and escaped as JSON writes them.
import t from 'tap';
import { shown } from '../../lib/util/shown.js';

t.test('shown() tells a string from a number and escapes what a message must not carry raw', async (t) => {
  t.equal(shown('80'), '"80"', 'a string is quoted');
  t.equal(shown(80), '80', 'a number is not');
  t.equal(shown(80n), '80n', 'a bigint carries its n');
  t.equal(shown(''), '""', 'the empty string is visible');
  t.equal(shown('a\nok - forged'), '"a\\nok - forged"', 'a newline is escaped: the message stays one line');
  t.notOk([...shown('\u001b[2Jcleared')].some((c) => c.charCodeAt(0) < 0x20), 'no control character reaches the message');
  t.equal(shown('\ud800'), '"\\ud800"', 'a lone surrogate is escaped');
  t.equal(shown('x'.repeat(100)), `"${'x'.repeat(40)}"…`, 'a long string is cut at 40 characters');
  t.equal(shown({ toString: () => 'lie' }), 'an object', 'an object is named by kind');
});
