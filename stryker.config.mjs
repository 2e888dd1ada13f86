/**
 * Mutation check of the billing centre: `npm run test:mutation` (docs/testing.md). Mutates the
 * state transitions and hot-path statements (src/billing/sql), the charge protocol
 * (src/billing/charge) and the domain (src/domain), and runs the tests of
 * vitest.mutation.config.ts against each mutant, only those that cover it. Needs DATABASE_URL
 * (a PostgreSQL server, as the tests do). Not part of `npm test` nor of CI.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  plugins: ['@stryker-mutator/vitest-runner'],
  mutate: ['src/billing/sql/**/*.ts', 'src/billing/charge/**/*.ts', 'src/domain/**/*.ts'],
  coverageAnalysis: 'perTest',
  // Mutants of module-level code (constants, caches) would need every test for each: left out.
  ignoreStatic: true,
  concurrency: 2,
  timeoutMS: 30_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
  thresholds: { high: 80, low: 60, break: null },
};
