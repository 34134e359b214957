// Writes docs/check.md from the check table (cli/check/doc.ts). Run after a build: `npm run docs:check`.
import { writeFileSync } from 'node:fs';
import { CHECKS } from '../dist/cli/check/all.js';
import { renderCheckDoc } from '../dist/cli/check/doc.js';

writeFileSync(new URL('../docs/check.md', import.meta.url), renderCheckDoc(CHECKS));
console.log(`docs/check.md: ${CHECKS.length} checks`);
