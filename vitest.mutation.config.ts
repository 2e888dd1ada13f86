import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * The tests the mutation check (`npm run test:mutation`, stryker.config.mjs) runs against each
 * mutant of the billing centre: the domain's unit tests and the fast PostgreSQL tests of the
 * claim, the write-ahead, the outcome commits and a credential's group. Not part of `npm test`.
 *
 * Stryker runs one vitest per worker; each would drop and rebuild the shared template database
 * in the usual global setup. Here the template is named after the migrations it holds and built
 * once, under an advisory lock, by whichever worker comes first (test/support/mutation-setup.ts).
 */
const migrations = createHash('sha256');
for (const f of readdirSync('migrations', { recursive: true, withFileTypes: true })
  .filter((e) => e.isFile())
  .map((e) => `${e.parentPath}/${e.name}`)
  .sort())
  migrations.update(f).update(readFileSync(f));
process.env.REBILL_TEST_TEMPLATE ??= `rebill_mutation_${migrations.digest('hex').slice(0, 12)}`;

// Stryker runs the tests in worker threads, where a test cannot switch the host's time zone
// (calendar.test.ts sets process.env.TZ and checks the offset moved off zero). The whole run
// takes a host zone away from UTC instead, so that test still compares zones: UTC (its
// reference) is never the host's, and the calendar must give the same instants regardless.
process.env.TZ = 'America/Los_Angeles';

export default defineConfig({
  test: {
    include: [
      // domain
      'test/domain/calendar.test.ts',
      'test/domain/money.test.ts',
      'test/dunning/policy.test.ts',
      'test/billing/lifecycle.test.ts',
      // the centre, per statement and per verb
      'test/billing/sql.*.test.ts',
      'test/billing/charge.*.test.ts',
      'test/billing/outcome-batch.test.ts',
      'test/billing/claim-cursor.test.ts',
      'test/dunning/ledger.test.ts',
      'test/billing/recovery.test.ts',
      'test/billing/core.test.ts',
    ],
    // A minute of a slow sandbox per run: the launch's guards have their own statement tests.
    exclude: ['test/billing/charge.hold-race.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    globalSetup: ['test/support/mutation-setup.ts'],
  },
});
