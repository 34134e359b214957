// The fault fuzzer in CI, second half (test/fuzz/fuzz-test.ts): 5,000 runs from seed 1129.
import { fuzzTest } from '../fuzz/fuzz-test.js';

fuzzTest(1129);
