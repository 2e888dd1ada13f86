#!/usr/bin/env node
// Starts the CLI from the bundle `npm install` builds (dist/, see scripts/build.js) when it is
// newer than every source file, else straight from the TypeScript sources through tsx, so
// `npx rebill` works with or without a build and an edit never runs stale.
// REBILL_FROM_SOURCE=1 always runs the sources.
import { freshBundle } from './entry.js';

const bundle = process.env.REBILL_FROM_SOURCE ? null : freshBundle(new URL('../', import.meta.url));
let main;
if (bundle) {
  ({ main } = await import(bundle));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
await main(process.argv);
