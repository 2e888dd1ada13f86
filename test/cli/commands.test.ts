import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * The CLI as a user runs it: child processes, one after another, against the sandbox and this
 * file's database (PostgreSQL, or a PGlite data directory the processes take in turn).
 */
describe('rebill CLI', () => {
  let w: World;
  let env: Record<string, string>;
  let dir: string | undefined;
  beforeAll(async () => {
    w = await startWorld();
    env = { ...w.env };
    if (!w.t.url) {
      dir = mkdtempSync(join(tmpdir(), 'rebill-cli-'));
      env.REBILL_DATA_DIR = dir;
    }
  });
  afterAll(async () => {
    await w?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses an out-of-range number in any numeric flag or argument: exit 2, naming it', {
    timeout: 240_000,
  }, async () => {
    const huge = '99999999999999999999';
    for (const [args, name] of [
      [['events', 'list', '--after', huge], '--after'],
      [['events', 'list', '--mandate-id', huge], '--mandate-id'],
      [['events', 'list', '--limit', '0'], '--limit'],
      [['events', 'list', '--limit', '1001'], '--limit'],
      [['runs', 'list', '--before', huge], '--before'],
      [['runs', 'list', '--limit', '0'], '--limit'],
      [['webhooks', 'deliveries', huge], 'id'],
      [['charges', 'list', '--after', '9007199254740992'], '--after'],
      [['mandates', 'list', '--limit', '-1'], '--limit'],
    ] as const) {
      const r = await runCli([...args], env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`${name}: expected`);
      expect(r.stderr).not.toContain('database error');
    }
    // the cursor may be 0 (the start), as the API allows
    const start = await runCli(['events', 'list', '--after', '0', '--limit', '1000'], env);
    expect(start.code, start.stderr).toBe(0);
  });

  it('creates a mandate, bills it, and lists the run', { timeout: 240_000 }, async () => {
    const v = await w.verify();
    const created = await runCli(
      [
        'mandates',
        'create',
        '--customer-ref',
        'cli-1',
        '--intent',
        'subscription',
        '--amount',
        '1500',
        '--currency',
        'GBP',
        '--entity',
        'default',
        '--narrative',
        'CLI test',
        '--interval',
        '1 month',
        '--start',
        '2026-02-01T10:00:00Z',
        // started in the past on purpose: the run below bills from the first cycle on
        '--backfill',
        '--timezone',
        'Europe/London',
        '--link',
        v.href,
        '--json',
      ],
      env,
    );
    expect(created.code, created.stderr).toBe(0);
    const m = JSON.parse(created.stdout);
    expect(m).toMatchObject({
      intent: 'subscription',
      amount: 1500,
      currency: 'GBP',
      nextDueAt: '2026-02-01T10:00:00.000Z',
    });

    const dry = await runCli(['run', '--as-of', '2026-02-01T11:00:00Z', '--dry-run', '--json'], env);
    expect(JSON.parse(dry.stdout).forecast).toEqual([expect.objectContaining({ mandateId: m.id, cycle: 0 })]);
    expect(w.sandbox.ledger().filter((e) => e.chainId === v.chainId)).toHaveLength(0);

    const run = await runCli(['run', '--as-of', '2026-02-01T11:00:00Z', '--mandate-id', String(m.id)], env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/authorized/);
    expect(w.sandbox.ledger().filter((e) => e.chainId === v.chainId && e.op === 'authorize')).toHaveLength(1);

    const show = await runCli(['mandates', 'show', String(m.id), '--json'], env);
    const detail = JSON.parse(show.stdout);
    expect(detail.charges).toHaveLength(1);
    expect(detail.links.filter((l: { current: boolean }) => l.current)).toHaveLength(1);

    const runs = await runCli(['runs', 'list', '--json'], env);
    const items = JSON.parse(runs.stdout).items as { trigger: string; dryRun: boolean; status: string }[];
    expect(items.map((r) => [r.trigger, r.dryRun, r.status])).toEqual([
      ['cli', false, 'completed'],
      ['cli', true, 'completed'],
    ]);
  });

  it('rejects bad input with a clear message and a meaningful exit code', { timeout: 240_000 }, async () => {
    const badAt = await runCli(['run', '--as-of', 'yesterday'], env);
    expect(badAt.code).toBe(2);
    expect(badAt.stderr).toMatch(/--as-of: must be an ISO-8601 date/);
    const unknown = await runCli(['run', '--mandate-id', '999999'], env);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/mandate 999999 not found/);
    const badEnv = await runCli(['mandates', 'list'], { ...env, WORLDPAY_URL: 'not a url' });
    expect(badEnv.code).toBe(2);
    expect(badEnv.stderr).toMatch(/WORLDPAY_URL/);
    const badNarrative = await runCli(
      [
        'mandates',
        'create',
        '--customer-ref',
        'x',
        '--intent',
        'unscheduled',
        '--amount',
        '100',
        '--currency',
        'GBP',
      ],
      env,
    );
    expect(badNarrative.code).toBe(2);
    expect(badNarrative.stderr).toMatch(/--narrative/);
    // billing weeks ahead is refused unless asked for
    const ahead = new Date(Date.now() + 19 * 86_400_000).toISOString();
    const future = await runCli(['run', '--as-of', ahead], { ...env, REBILL_ALLOW_FUTURE_RUNS: '0' });
    expect(future.code).toBe(2);
    expect(future.stderr).toMatch(/--as-of: .*ahead of now.*--allow-future/);
    const create = (extra: string[]) =>
      runCli(
        [
          'mandates',
          'create',
          ...['--customer-ref', 'bad', '--intent', 'subscription', '--amount', '100', '--currency', 'GBP'],
          ...['--narrative', 'x', '--interval', '1 month'],
          ...extra,
        ],
        env,
      );
    const impossible = await create([
      '--start',
      '2027-02-30',
      '--link',
      `${env.WORLDPAY_URL}/payments/authorizations/recurring/x`,
    ]);
    expect(impossible.code).toBe(2);
    expect(impossible.stderr).toMatch(/--start: 2027-02-30 is not a calendar date/);
    const foreign = await create(['--link', 'https://evil.example.com/payments/authorizations/recurring/x']);
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toMatch(/--link: must be a link on the configured Worldpay origin/);
    const contradiction = await create([
      ...['--intent', 'instalment', '--instalments', '3', '--total-amount', '10000'],
      ...['--link', `${env.WORLDPAY_URL}/payments/authorizations/recurring/x`],
    ]);
    expect(contradiction.code).toBe(2);
    expect(contradiction.stderr).toMatch(/--amount: contradicts/);
    // hostile values, flag by flag: exit 2 naming the flag, never echoing a card number
    const link = ['--link', `${env.WORLDPAY_URL}/payments/authorizations/recurring/x`];
    const PAN = '4929301661318602';
    for (const [extra, flag] of [
      [['--customer-ref', PAN], '--customer-ref'],
      [['--narrative', 'a\u0007b'], '--narrative'],
      [['--narrative', '\u{1F4B8}\u{1F4B8}'], '--narrative'],
      [['--amount', '5188247082276544'], '--amount'],
      [['--amount', '10000001'], '--amount'],
      [['--timezone', PAN], '--timezone'],
      [['--start', '1999-12-31'], '--start'],
      [['--start', '+275760-09-13T00:00:00Z'], '--start'],
      [['--interval', PAN], '--interval'],
    ] as const) {
      const r = await create([...extra, ...link]);
      expect(r.code, `${flag}: ${r.stderr}`).toBe(2);
      expect(r.stderr, flag).toContain(flag);
      expect(r.stderr, flag).not.toContain(PAN);
      expect(r.stderr, flag).not.toContain('5188247082276544');
    }
    const bogusState = await runCli(['charges', 'list', '--state', 'bogus'], env);
    expect(bogusState.code).toBe(2);
    expect(bogusState.stderr).toMatch(/--state.*retry_scheduled/);
    // a card number on the command line is refused, and not repeated
    const onArgv = await create(['--card-number', '4444333322221111', '--expiry', '12/2030']);
    expect(onArgv.code).toBe(2);
    expect(onArgv.stderr).toMatch(/--card-number: .*ps and the shell's history.*--card-number-file/);
    expect(onArgv.stderr).not.toContain('4444333322221111');
    // from a file it is taken (and stored encrypted, shown as brand and last four)
    const panDir = mkdtempSync(join(tmpdir(), 'rebill-pan-'));
    const file = join(panDir, 'pan');
    writeFileSync(file, '4444 3333 2222 1111\n', { mode: 0o600 });
    const fromFile = await create(['--card-number-file', file, '--expiry', '12/2030', '--json']);
    rmSync(panDir, { recursive: true, force: true });
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout).credential).toMatchObject({ lastFour: '1111', holdsCardData: true });
    expect(fromFile.stdout).not.toContain('4444333322221111');
  });
});
