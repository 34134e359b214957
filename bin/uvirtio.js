#!/usr/bin/env node
// The `uvirtio` command: the compiled CLI (npm run build, or npm install, builds it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  console.error('uvirtio: not built yet (dist/cli/main.js is missing); run `npm run build` in the package directory');
  process.exit(2);
}
await import(main.href);
