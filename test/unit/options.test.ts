// lib/util/options.ts: the one parser of address options (sim:, vfio:, vhost-user:).
import t from 'tap';
import { checkValue, choice, closestKey, flag, int, listOf, optionsObject, parseOptions, text } from '../../lib/util/options.js';
import { UvirtioError } from '../../lib/errors.js';

const SCHEMA = {
  n: int(1, 64), size: int(2, 32768, { powerOfTwo: true }), on: flag(), mode: choice('drain', 'hold'),
  faults: listOf('a', 'b'), mac: text(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i, 'a MAC address'),
};
const SOURCE = { address: 'sim:blk?…', hint: 'the options are n, size, on, mode, faults, mac' };

function refusal(raw: Record<string, string>): UvirtioError | undefined {
  try {
    parseOptions(raw, SCHEMA, SOURCE);
    return undefined;
  } catch (e) {
    return e as UvirtioError;
  }
}

t.test('values come back typed; options not given are absent', async (t) => {
  t.same(parseOptions({ n: '64', size: '256', on: '1', mode: 'hold', faults: 'a,b,', mac: '52:54:00:AB:cd:01' }, SCHEMA, SOURCE),
    { n: 64, size: 256, on: true, mode: 'hold', faults: ['a', 'b'], mac: '52:54:00:AB:cd:01' });
  t.same(parseOptions({ on: '0' }, SCHEMA, SOURCE), { on: false });
  t.same(parseOptions({}, SCHEMA, SOURCE), {});
});

t.test('unknown keys and values that do not fit: E_BAD_ADDRESS naming the option, with the hint', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ bogus: '1' }, /unknown option "bogus" \(known: n, size, on, mode, faults, mac\)/],
    [{ toString: '1' }, /unknown option "toString"/],
    [{ n: '0' }, /n=0 must be an integer from 1 to 64/],
    [{ n: '65' }, /n=65/],
    [{ n: '0x10' }, /n=0x10/],
    [{ n: '1e1' }, /n=1e1/],
    [{ n: '1.5' }, /n=1.5/],
    [{ n: ' 4' }, /n= 4/],
    [{ size: '48' }, /size=48 must be a power of two from 2 to 32768/],
    [{ on: 'yes' }, /on=yes must be 0 or 1/],
    [{ mode: 'Drain' }, /mode=Drain must be one of drain, hold/],
    [{ faults: 'a,c' }, /faults=a,c must be a comma-separated list of a, b/],
    [{ mac: '52:54:00:12:34' }, /mac=52:54:00:12:34 must be a MAC address/],
  ];
  for (const [raw, message] of cases) {
    const e = refusal(raw);
    t.ok(e instanceof UvirtioError && e.code === 'E_BAD_ADDRESS', `${JSON.stringify(raw)} → E_BAD_ADDRESS`);
    t.match(e?.message, message);
    t.match(e?.message, /^sim:blk\?…: /, 'the message starts with the address');
    t.equal(e?.hint, SOURCE.hint);
  }
});

t.test('a schema with no options refuses any', async (t) => {
  t.throws(() => parseOptions({ x: '1' }, {}, { address: 'vfio:0000:00:02.0', hint: 'none' }), { code: 'E_BAD_ADDRESS', message: /takes no options/ });
});

t.test('checkValue: the same limit for a value given through the API, as E_INVALID_ARGUMENT', async (t) => {
  const size = int(2, 32768, { powerOfTwo: true });
  t.equal(checkValue(size, 1024, 'queueMaxSize'), 1024);
  t.throws(() => checkValue(size, 1000, 'queueMaxSize'), { code: 'E_INVALID_ARGUMENT', message: 'queueMaxSize must be a power of two from 2 to 32768, got 1000' });
  t.throws(() => checkValue(size, '1024', 'queueMaxSize'), { code: 'E_INVALID_ARGUMENT' }, 'text is not a number');
  t.throws(() => checkValue(choice('drain', 'hold'), 'fast', 'mode'), { code: 'E_INVALID_ARGUMENT', message: /mode must be one of drain, hold, got "fast"/ });
});

t.test('optionsObject: API options refuse non-objects and unknown keys, the closest spelling as the hint', async (t) => {
  const KNOWN = { queueSize: true, keepTransport: true, eventIdx: true, size: true } as const;
  const refusedBy = (v: unknown): UvirtioError | undefined => {
    try {
      optionsObject(v as object, 'f options', KNOWN);
      return undefined;
    } catch (e) {
      return e as UvirtioError;
    }
  };
  t.same(optionsObject(undefined, 'f options', KNOWN), {}, 'undefined: no options');
  t.equal(refusedBy({ queueSize: 4, [Symbol('s')]: 1 }), undefined, 'known keys (and symbol keys) pass');
  for (const v of [null, 5, 'queueSize', [], [1], Symbol('s'), 1n, true, () => 1]) {
    t.match(refusedBy(v), { code: 'E_INVALID_ARGUMENT', message: /^f options must be an object/ }, `${typeof v} ${Array.isArray(v) ? '(an array)' : ''}: refused`);
  }
  const cases: [string, string | undefined][] = [
    ['queueSzie', 'queueSize'], ['keepTransprot', 'keepTransport'], ['eventidx', 'eventIdx'], ['EVENTIDX', 'eventIdx'],
    ['sise', 'size'], ['zzz', undefined], ['toString', undefined], ['__proto__', undefined],
  ];
  for (const [key, near] of cases) {
    const e = refusedBy(JSON.parse(`{"${key}": 1}`));
    t.match(e, { code: 'E_INVALID_ARGUMENT', message: `f options: unknown option "${key}" (known: queueSize, keepTransport, eventIdx, size)` }, `${key}: refused, named, the known ones listed`);
    t.equal(e?.hint, near === undefined ? 'leave it out, or use one of the known options' : `did you mean "${near}"?`, `${key}: hint`);
  }
  t.match(refusedBy({ ['x'.repeat(10_000)]: 1 }), { code: 'E_INVALID_ARGUMENT', message: /unknown option "x{10,60}…"/ }, 'a huge key is shown cut');
  t.equal(closestKey('queueSzie', []), undefined, 'nothing known: no suggestion');
});

t.test('address options suggest the closest spelling too', async (t) => {
  t.match(refusal({ szie: '4' }), { code: 'E_BAD_ADDRESS', message: /unknown option "szie" \(known: .*\); did you mean "size"\?/ });
});
