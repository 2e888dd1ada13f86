import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';

describe('npm run demo (rebill demo)', () => {
  it('tells the billing story end to end, exits 0 on its own and leaves nothing behind', async () => {
    const r = await runCli(['demo'], {}, { timeoutMs: 180_000 });
    expect(r.signal).toBeNull(); // not killed by the timeout: nothing kept the process alive
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/subscription .* via worldpay/);
    expect(out).toMatch(/instalment .* via worldpay/);
    expect(out).toMatch(/unscheduled .* via worldpay/);
    expect(out).toMatch(/via liquido/);
    expect(out).toContain('read 3, imported 2, rejected 1');
    expect(out).toContain('fails the Luhn check');
    expect(out).toMatch(/due 7: authorized 6, refused 1, settle requested 6, retry scheduled 1/);
    expect(out).toMatch(/refusal 51: retry, next attempt 2026-12-0[23]/);
    expect(out).toMatch(/due 1: authorized 1, refused 0, settle requested 1/);
    expect(out).toContain('settled 7, settlement failed 0');
    expect(out).toContain('settled after 2 attempts');
    expect(out).toContain('0 stale links used');
    expect(out).toContain('mandates still holding card data: 0');
    // the merchant's receiver got the story's events, every one signed
    expect(out).toMatch(/delivered (\d+) signed events \(\1 verified, 0 refused\)/);
    expect(out).toMatch(/7 {2}charge\.authorized/);
    expect(out).toMatch(/1 {2}charge\.refused/);
    expect(out).toMatch(/7 {2}charge\.settled/);
    expect(out).toMatch(/1 {2}legacy\.migrated/);
    const dir = /embedded database in (\S+),/.exec(out)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    // it says it deleted its database, and where the reader goes next
    expect(out).toContain(`Its database (${dir}) is deleted now`);
    expect(out).toContain('Try it locally in five minutes');
    expect(out).toMatch(/npx rebill sandbox --port 8787/);
    expect(out).toMatch(/_sandbox\/verifications/);
    expect(out).toMatch(/Going to production: PostgreSQL first/);
  }, 200_000);
});
