#!/usr/bin/env node
// The guards of the charge protocol, taken out one at a time: each mutant below deletes or
// disables one guard (most of them predicates inside SQL, which Stryker does not mutate), the
// centre's tests run against it in a copy of the checkout, and a mutant they do not notice is
// a guard nobody would miss. The mutants are listed in scripts/guard-mutants.json. Part of
// `npm run test:mutation`; needs DATABASE_URL.
//
//   node scripts/mutate-guards.mjs [--only NAME[,NAME...]] [--json FILE]
//
// Exit status: 0 when every mutant was killed, 1 when one survived, 2 on a usage or setup error
// (a mutant whose text is no longer in its file is a setup error: this list must follow the code).
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import postgres from 'postgres';

const ROOT = resolve(import.meta.dirname, '..');

/** Each guard: the file, the exact text that holds it, what it becomes without it. */
const MUTANTS = JSON.parse(readFileSync(join(ROOT, 'scripts/guard-mutants.json'), 'utf8'));

/** The centre's tests: what each mutant is run against. */
const TESTS = [
  'test/billing/sql.write-ahead.test.ts',
  'test/billing/sql.launch.test.ts',
  'test/billing/sql.authorized-outcomes.test.ts',
  'test/billing/sql.fences.test.ts',
  'test/billing/charge.cancel-in-flight.test.ts',
  'test/billing/charge.blocked-credential.test.ts',
  'test/billing/charge.newest-link.test.ts',
  'test/billing/charge.credential-lease.test.ts',
  'test/billing/outcome-batch.test.ts',
  'test/billing/core.test.ts',
  'test/billing/lifecycle.test.ts',
  'test/billing/recovery.test.ts',
  'test/billing/claim-cursor.test.ts',
  'test/mandates/change-bounds.test.ts',
];

function usage(message) {
  process.stderr.write(`mutate-guards: ${message}\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
let only = null;
let jsonOut = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--only') only = (args[++i] ?? usage('--only needs names')).split(',');
  else if (args[i] === '--json') jsonOut = args[++i] ?? usage('--json needs a file');
  else usage(`unknown argument ${args[i]}`);
}
if (!process.env.DATABASE_URL) usage('DATABASE_URL must name a PostgreSQL server the tests may use');

const chosen = only ? MUTANTS.filter((m) => only.includes(m.name)) : MUTANTS;
if (only && chosen.length !== only.length)
  usage(`no mutant named ${only.filter((n) => !MUTANTS.some((m) => m.name === n)).join(', ')}`);
for (const m of chosen) {
  const text = readFileSync(join(ROOT, m.file), 'utf8');
  const count = text.split(m.from).length - 1;
  if (count !== 1)
    usage(`"${m.name}": its text is found ${count} times in ${m.file} (this list must follow the code)`);
}

// A copy of the checkout, so an interrupted run never leaves a mutant in the sources.
const work = mkdtempSync(join(tmpdir(), 'rebill-guards-'));
for (const entry of [
  'src',
  'test',
  'migrations',
  'bin',
  'scripts',
  'package.json',
  'tsconfig.json',
  'vitest.config.ts',
])
  cpSync(join(ROOT, entry), join(work, entry), { recursive: true });
symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'));
const cleanup = () => rmSync(work, { recursive: true, force: true });
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const TEMPLATE = `rebill_guards_${process.pid}`;

function runTests() {
  const out = spawnSync(join(work, 'node_modules/.bin/vitest'), ['run', '--bail', '1', ...TESTS], {
    cwd: work,
    env: {
      ...process.env,
      NO_COLOR: '1',
      FORCE_COLOR: '0',
      REBILL_TEST_TEMPLATE: TEMPLATE,
    },
    encoding: 'utf8',
  });
  return { ok: out.status === 0, output: `${out.stdout}\n${out.stderr}` };
}

const results = [];
try {
  const base = runTests();
  if (!base.ok) {
    process.stderr.write(base.output.slice(-4000));
    usage('the tests fail without any mutant: fix them first');
  }
  for (const m of chosen) {
    const path = join(work, m.file);
    const original = readFileSync(path, 'utf8');
    writeFileSync(path, original.replace(m.from, m.to));
    const started = Date.now();
    const { ok, output } = runTests();
    writeFileSync(path, original);
    const failed = [...output.matchAll(/FAIL\s+(\S+\.test\.ts)/g)].map((x) => x[1]);
    const status = ok ? 'survived' : 'killed';
    results.push({
      name: m.name,
      file: m.file,
      status,
      by: [...new Set(failed)],
      seconds: Math.round((Date.now() - started) / 1000),
    });
    process.stdout.write(
      `${status.padEnd(8)}  ${m.name}  (${m.file})${failed.length ? `  by ${[...new Set(failed)].join(', ')}` : ''}\n`,
    );
  }
} finally {
  cleanup();
  // The template the test runs cloned is this run's own: drop it.
  const admin = postgres(process.env.DATABASE_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${TEMPLATE} with (force)`).finally(() => admin.end());
}
const killed = results.filter((r) => r.status === 'killed').length;
process.stdout.write(
  `\nguards: ${killed} of ${results.length} mutants killed (${((100 * killed) / results.length).toFixed(1)} %)\n`,
);
if (jsonOut)
  writeFileSync(jsonOut, `${JSON.stringify({ killed, total: results.length, results }, null, 2)}\n`);
process.exit(killed === results.length ? 0 : 1);
