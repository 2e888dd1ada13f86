import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptSecret } from '../../src/domain/card-crypto.ts';
import { cliEnv, runCli } from '../support/cli.ts';
import { startWorld, TEST_KEY, type World } from '../support/world.ts';

/**
 * `rebill mandates create|credential --api v7` as a user runs them (child processes,
 * this file's database): each credential's flags, card numbers read from files and never
 * printed, and each mistake an exit 2 naming its flag.
 */
const PAN = '4444333322221111';
const NETWORK_TOKEN = '5555555555554444';
const REF = 'MCCOLXT1C0104  ';

describe('rebill mandates --api v7', () => {
  let w: World;
  let env: Record<string, string>;
  let dispose = () => {};
  let dir: string;
  let n = 0;
  beforeAll(async () => {
    w = await startWorld();
    ({ env, dispose } = cliEnv(w));
    dir = mkdtempSync(join(tmpdir(), 'rebill-v7-'));
    writeFileSync(join(dir, 'pan'), '4444 3333 2222 1111\n', { mode: 0o600 });
    writeFileSync(join(dir, 'ntok'), `${NETWORK_TOKEN}\n`, { mode: 0o600 });
    writeFileSync(join(dir, 'bad'), '4444333322221112\n', { mode: 0o600 });
  });
  afterAll(async () => {
    await w?.close();
    dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const create = (credential: string[]) =>
    runCli(
      [
        'mandates',
        'create',
        '--customer-ref',
        `cli-v7-${++n}`,
        '--intent',
        'subscription',
        '--amount',
        '1999',
        '--currency',
        'GBP',
        '--narrative',
        'Acme v7',
        '--interval',
        '1 month',
        '--json',
        ...credential,
      ],
      env,
    );

  it('creates a mandate on a v7 card read from a file, shows it, and attaches a network token and a token', {
    timeout: 300_000,
  }, async () => {
    const card = await create([
      '--api',
      'v7',
      '--scheme-reference',
      REF,
      '--card-number-file',
      join(dir, 'pan'),
      '--expiry',
      '12/2030',
      '--card-holder-name',
      'Ada Lovelace',
    ]);
    expect(card.code, card.stderr).toBe(0);
    expect(card.stdout).not.toContain(PAN);
    const m = JSON.parse(card.stdout);
    expect(m.credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/plain',
      schemeReference: REF,
      lastFour: '1111',
      expiry: '12/2030',
      holdsCardData: true,
    });
    const [row] = await w.t.database.rows<{
      encrypted_pan: string;
      card_holder_name: string;
      scheme_reference: string;
    }>(
      sql`select encrypted_pan, card_holder_name, scheme_reference from credentials where id = ${m.credential.id}`,
    );
    expect(decryptSecret(row!.encrypted_pan, [Buffer.from(TEST_KEY, 'hex')])).toBe(PAN);
    expect(row).toMatchObject({ card_holder_name: 'Ada Lovelace', scheme_reference: REF });

    const show = await runCli(['mandates', 'show', String(m.id)], env);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain(`Worldpay v7 · card/plain · active · scheme reference "${REF}"`);
    expect(show.stdout).not.toContain('link chain');
    expect(show.stdout).not.toContain(PAN);

    const nt = await runCli(
      [
        'mandates',
        'credential',
        String(m.id),
        '--api',
        'v7',
        '--scheme-reference',
        'NT-REF',
        '--network-token-file',
        join(dir, 'ntok'),
        '--expiry',
        '03/2031',
        '--json',
      ],
      env,
    );
    expect(nt.code, nt.stderr).toBe(0);
    expect(nt.stdout).not.toContain(NETWORK_TOKEN);
    expect(JSON.parse(nt.stdout).credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/networkToken',
      schemeReference: 'NT-REF',
      lastFour: '4444',
      expiry: '03/2031',
    });

    // a token needs no scheme reference
    const tok = await create(['--api', 'v7', '--token-href', `${w.sandbox.url}/tokens/cli-v7`]);
    expect(tok.code, tok.stderr).toBe(0);
    expect(JSON.parse(tok.stdout).credential).toMatchObject({
      api: 'v7',
      instrumentType: 'card/token',
      schemeReference: null,
    });
  });

  it('refuses each wrong combination with exit 2 naming the flag, and repeats no card number', {
    timeout: 300_000,
  }, async () => {
    const before = await w.t.database.rows<{ n: number }>(sql`select count(*)::int as n from credentials`);
    const pan = ['--card-number-file', join(dir, 'pan'), '--expiry', '12/2030'];
    for (const [args, message] of [
      [['--api', 'v8', ...pan], /--api.*v6.*v7/],
      [['--api', 'v7', ...pan], /--scheme-reference: required with --card-number-file/],
      [['--scheme-reference', REF, ...pan], /--scheme-reference: only with --api v7/],
      [
        ['--api', 'v7', '--scheme-reference', REF, '--link', `${w.sandbox.url}/x`],
        /--link: not a Card Payments v7 credential/,
      ],
      [
        [
          '--api',
          'v7',
          '--scheme-reference',
          REF,
          '--card-number-file',
          join(dir, 'bad'),
          '--expiry',
          '12/2030',
        ],
        /--card-number-file: fails the Luhn check/,
      ],
      [
        [
          '--api',
          'v7',
          '--scheme-reference',
          REF,
          '--card-number-file',
          join(dir, 'pan'),
          '--expiry',
          '12/2020',
        ],
        /--expiry: the card expired/,
      ],
      [['--api', 'v7', '--scheme-reference', '', ...pan], /--scheme-reference: must not be empty/],
      [
        ['--api', 'v7', '--scheme-reference', REF, ...pan, '--token-href', `${w.sandbox.url}/tokens/x`],
        /exactly one of --token-href, --card-number-file, --network-token-file/,
      ],
    ] as const) {
      const r = await create([...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toContain(PAN);
      expect(r.stderr).not.toContain('4444333322221112');
    }
    const after = await w.t.database.rows<{ n: number }>(sql`select count(*)::int as n from credentials`);
    expect(after).toEqual(before);
  });
});
