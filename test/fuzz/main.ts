// `npm run fuzz -- [--runs N] [--seed S] [--path P]`: the fault fuzzer for long runs. Prints what
// it covered (fault classes, codes, worst settle time); on a failure, the seed and path to replay.

import { parseArgs } from 'node:util';
import { fuzz } from './property.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '1000' }, seed: { type: 'string' }, path: { type: 'string' } },
});
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  console.error('usage: npm run fuzz -- [--runs N] [--seed S] [--path P]   (N ≥ 1, S an integer)');
  process.exit(2);
}
process.on('unhandledRejection', (e) => {
  console.error(`fuzz: an unhandled rejection escaped the SDK (seed ${seed}):`, e);
  process.exit(1);
});
console.log(`fuzz: ${runs} runs, seed ${seed}${values.path ? `, path ${values.path}` : ''}`);
const started = Date.now();
try {
  const stats = await fuzz(runs, seed, values.path);
  console.log(JSON.stringify({ ...stats, seconds: (Date.now() - started) / 1000 }, null, 2));
} catch (e) {
  console.error(String((e as Error)?.message ?? e));
  const cause = (e as { cause?: unknown })?.cause;
  if (cause) console.error('cause:', cause instanceof Error ? cause.message : cause);
  console.error(`fuzz: FAILED — replay with: npm run fuzz -- --runs ${runs} --seed ${seed}`);
  process.exit(1);
}
