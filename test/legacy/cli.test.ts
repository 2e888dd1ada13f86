import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerLegacyCommands } from '../../src/cli/legacy.ts';
import { loadConfig } from '../../src/config.ts';
import type { Database } from '../../src/db/client.ts';
import { type TestDatabase, testDatabase } from '../support/db.ts';

const KEY_HEX = '07'.repeat(32);
const example = new URL('../../docs/legacy-example.csv', import.meta.url).pathname;
const fixture = new URL('../fixtures/legacy/mandates.csv', import.meta.url).pathname;

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

describe('rebill legacy (CLI)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await testDatabase();
  });
  afterAll(async () => t?.dispose());

  async function run(args: string[], env: Record<string, string> = { REBILL_ENCRYPTION_KEY: KEY_HEX }) {
    const out = sink();
    const err = sink();
    const program = new Command().exitOverride();
    // The command closes what it opens; the test database outlives it.
    const database: Database = { ...t.database, close: async () => {} };
    registerLegacyCommands(program, {
      openDatabase: async () => database,
      config: () => loadConfig(env),
      stdout: out.stream,
      stderr: err.stream,
      now: () => new Date('2026-11-21T12:00:00Z'),
    });
    process.exitCode = undefined;
    await program.parseAsync(['node', 'rebill', 'legacy', ...args]);
    const code = process.exitCode ?? 0;
    process.exitCode = undefined;
    return { code, stdout: out.text(), stderr: err.text() };
  }

  it('imports the README example (exit 0), then reports it unchanged', async () => {
    const first = await run(['import', example, '--json']);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ read: 4, imported: 4, rejected: [], dryRun: false });
    const again = await run(['import', example]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/unchanged\s+4/);
  });

  it('exits 2 when rows are rejected, lists every rejection with --json and never prints a card number', async () => {
    const r = await run(['import', fixture, '--dry-run', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).rejected).toHaveLength(22);
    expect(r.stdout + r.stderr).not.toMatch(/4444333322221112|4444333322221111/);
    const human = await run(['import', fixture, '--dry-run']);
    expect(human.stdout).toContain('line 8  card_number: fails the Luhn check');
    expect(human.stdout).toContain('... 2 more (use --json for all)');
  });

  it('exits 1 on a fatal error, 2 on a bad --format, and warns when no key is set', async () => {
    const r = await run(['import', '/nonexistent/file.csv'], {});
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('rebill legacy import: ENOENT');
    // a format not in the list is a usage error (exit 2 in the CLI), as every enum flag's is
    await expect(run(['import', example, '--format', 'xml'])).rejects.toMatchObject({
      code: 'commander.invalidArgument',
      message: expect.stringContaining("option '--format <format>' argument 'xml' is invalid"),
    });
  });

  it('status counts mandates holding card data', async () => {
    const r = await run(['status', '--json']);
    expect(JSON.parse(r.stdout)).toEqual({ mandates: 4, withCardData: 3, migrated: 0 });
  });

  it('rotate-key re-encrypts under the key in --new-key-file; the same file still imports as unchanged under the new key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rebill-key-'));
    const file = join(dir, 'new.key');
    writeFileSync(file, `${'09'.repeat(32)}\n`);
    const r = await run(['rotate-key', '--new-key-file', file, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ reencrypted: 2, alreadyNew: 0 });
    const same = await run(['rotate-key', '--new-key-file', file], {
      REBILL_ENCRYPTION_KEY: '09'.repeat(32),
    });
    expect(same.code).toBe(1);
    expect(same.stderr).toContain('the new key is the current key');
    const after = await run(['import', example, '--json'], { REBILL_ENCRYPTION_KEY: '09'.repeat(32) });
    expect(JSON.parse(after.stdout)).toMatchObject({ imported: 0, unchanged: 4 });
  });
});
