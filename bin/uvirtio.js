#!/usr/bin/env node
// The `uvirtio` command: the compiled CLI (npm run build, or npm install, builds it).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = new URL('../dist/cli/', import.meta.url);
if (!existsSync(fileURLToPath(new URL('main.js', dist)))) {
  console.error('uvirtio: not built yet (dist/cli/main.js is missing); run `npm run build` in the package directory');
  process.exit(2);
}
// SIGINT/SIGTERM handling first, before the rest loads: a signal at any moment ends the command
// with 130/143 (cli/signals.ts).
const { installSignalHandlers } = await import(new URL('signals.js', dist).href);
installSignalHandlers();
await import(new URL('main.js', dist).href);
