// Bundles the CLI (src/cli/main.ts and what it imports) into dist/ with esbuild, so a `rebill`
// process starts without compiling TypeScript through tsx's loader on every start, and the
// operator console (ui/) into dist/ui, which the admin server serves at /ui. npm runs this on
// `npm install` / `npm ci` (the `prepare` script); bin/rebill.js uses the CLI bundle only
// while it is newer than every source file. The CLI's dependencies stay external: they load
// from node_modules as they do under tsx (PGlite finds its wasm next to its own module). The
// console is bundled whole (Preact, Chart.js), so the browser loads nothing from elsewhere.
import { mkdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));

/** Bundle into `outdir` (default dist/); the entry is `<outdir>/rebill.mjs`, exporting `main`. */
export async function buildCli(outdir = `${root}dist`) {
  rmSync(`${outdir}/rebill.mjs`, { force: true });
  rmSync(`${outdir}/chunks`, { recursive: true, force: true });
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

/** The console into `outdir` (default dist/ui): app.js and app.css, with their source maps. */
export async function buildUi(outdir = `${root}dist/ui`) {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: { app: `${root}ui/src/main.tsx` },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: ['chrome120', 'firefox120', 'safari17'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    sourcemap: true,
    legalComments: 'linked',
    outdir,
    logLevel: 'warning',
  });
  return outdir;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const entry = await buildCli();
  const ui = await buildUi();
  process.stdout.write(`built ${entry} and ${ui}\n`);
}
