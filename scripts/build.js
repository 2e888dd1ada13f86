// Bundles the CLI (src/cli/main.ts and what it imports) into dist/ with esbuild, so a `rebill`
// process starts without compiling TypeScript through tsx's loader on every start. npm runs
// this on `npm install` / `npm ci` (the `prepare` script); bin/rebill.js uses the bundle only
// while it is newer than every source file. Dependencies stay external: they load from
// node_modules as they do under tsx (PGlite finds its wasm next to its own module).
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));

/** Bundle into `outdir` (default dist/); the entry is `<outdir>/rebill.mjs`, exporting `main`. */
export async function buildCli(outdir = `${root}dist`) {
  rmSync(outdir, { recursive: true, force: true });
  await build({
    entryPoints: { rebill: `${root}src/cli/main.ts` },
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    logLevel: 'warning',
  });
  return `${outdir}/rebill.mjs`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const entry = await buildCli();
  process.stdout.write(`built ${entry}\n`);
}
