// The fault fuzzer in CI, first half (test/fuzz/fuzz-test.ts): 5,000 runs from seed 20261129.
import { fuzzTest } from '../fuzz/fuzz-test.js';

fuzzTest(20261129);
