import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain JavaScript module without type declarations
import { freshBundle } from '../../bin/entry.js';
import { runCli } from '../support/cli.ts';

describe('bin/rebill.js picks the bundle only while it is fresh', () => {
  const root = mkdtempSync(join(tmpdir(), 'rebill-bin-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const url = pathToFileURL(`${root}/`);
  const at = (path: string, seconds: number) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), '');
    utimesSync(join(root, path), seconds, seconds);
  };

  it('uses dist/rebill.mjs when it is newer than every file under src/ and migrations/', () => {
    at('src/cli/main.ts', 1000);
    at('migrations/0000_init.sql', 1000);
    expect(freshBundle(url)).toBeNull(); // not built
    at('dist/rebill.mjs', 2000);
    expect(freshBundle(url)).toBe(pathToFileURL(join(root, 'dist/rebill.mjs')).href);
  });

  it('falls back to the sources when a source file or a migration changed after the build', () => {
    at('src/billing/deep/edited.ts', 3000);
    expect(freshBundle(url)).toBeNull();
    at('dist/rebill.mjs', 4000);
    expect(freshBundle(url)).not.toBeNull();
    at('migrations/0009_new.sql', 5000);
    expect(freshBundle(url)).toBeNull();
  });

  it('runs the same CLI from the sources (REBILL_FROM_SOURCE=1) as from whichever entry is current', async () => {
    const fromSource = await runCli(['--version'], { REBILL_FROM_SOURCE: '1' });
    const current = await runCli(['--version'], {});
    expect(fromSource).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    expect(current).toMatchObject({ code: 0, stdout: '0.1.0\n' });
  });
});
