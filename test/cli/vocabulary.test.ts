import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { BillingContext } from '../../src/billing/context.ts';
import type { Runner } from '../../src/billing/run/runner.ts';
import { buildProgram } from '../../src/cli/main.ts';
import {
  CREDENTIAL_FLAGS,
  type FieldSpelling,
  flagOf,
  GLOSSARY,
  RENAMED_OPTIONS,
} from '../../src/cli/vocabulary.ts';
import { adminRoutes } from '../../src/http/routes/index.ts';
import { cliInProcess } from '../support/cli-in-process.ts';

/** Every command of the program, with its path (`mandates create`). */
function commands(c: Command, path: string[] = []): { path: string; command: Command }[] {
  return c.commands.flatMap((sub) => {
    const p = [...path, sub.name()];
    return [{ path: p.join(' '), command: sub }, ...commands(sub, p)];
  });
}

type Def = { type: string; shape?: Record<string, z.ZodType>; options?: z.ZodType[]; innerType?: z.ZodType };
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;
const unwrap = (s: z.ZodType): z.ZodType => {
  const d = defOf(s);
  return d.innerType && ['optional', 'default', 'nullable', 'pipe'].includes(d.type)
    ? unwrap(d.innerType)
    : s;
};

/**
 * The fields of a request schema: an object's keys, a union's members' keys; a credential's own
 * fields spelled as the CLI takes card data, a v7 card's or network token's by its path
 * (`card.number`), so each of them has its flag too.
 */
function fieldsOf(
  schema: z.ZodType,
  credential = false,
  prefix = '',
): { field: string; credential: boolean }[] {
  const d = defOf(unwrap(schema));
  if (d.type === 'union') return (d.options ?? []).flatMap((o) => fieldsOf(o, true, prefix));
  if (d.type !== 'object') return [];
  return Object.entries(d.shape ?? {}).flatMap(([field, s]) => {
    const type = defOf(unwrap(s)).type;
    if (type === 'union') return fieldsOf(s, credential, prefix);
    if (credential && type === 'object') return fieldsOf(s, true, `${prefix}${field}.`);
    return [{ field: `${prefix}${field}`, credential }];
  });
}

const program = buildProgram();
const byPath = new Map(commands(program).map((c) => [c.path, c.command]));
const routes = adminRoutes({} as BillingContext, {} as Runner);

describe('one vocabulary across the CLI and the API', () => {
  it('every API route has its CLI command in the glossary, and every request field its flag by the rule', () => {
    const problems: string[] = [];
    const declared = routes.map((r) => `${r.method} ${r.url}`).sort();
    expect(GLOSSARY.map((g) => g.api).sort()).toEqual(declared);
    for (const g of GLOSSARY) {
      const route = routes.find((r) => `${r.method} ${r.url}` === g.api)!;
      const cmd = byPath.get(g.cli);
      if (!cmd || (cmd as unknown as { _hidden: boolean })._hidden) {
        problems.push(`${g.api}: no visible command ${g.cli}`);
        continue;
      }
      const fields = [
        ...(route.query ? fieldsOf(route.query) : []),
        ...(route.body ? fieldsOf(route.body) : []),
      ];
      for (const { field, credential } of fields) {
        const spelling: FieldSpelling =
          g.fields?.[field] ??
          (credential ? CREDENTIAL_FLAGS[field] : undefined) ??
          (flagOf(field) as FieldSpelling);
        if (spelling === 'deprecated' || spelling === 'refused') continue;
        if (spelling === 'argument') {
          if (!cmd.registeredArguments.some((a) => a.name() === field))
            problems.push(`${g.api} ${field}: no argument <${field}> on ${g.cli}`);
          continue;
        }
        const negated = `--no-${spelling.slice(2)}`;
        if (!cmd.options.some((o) => !o.hidden && (o.long === spelling || o.long === negated)))
          problems.push(`${g.api} ${field}: no ${spelling} on ${g.cli}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the old spellings are hidden from the help and named in no visible flag', () => {
    const old = ['--customer', '--total', '--settle', '--mandate', '--at', '--card-holder'];
    for (const [path, cmd] of byPath) {
      for (const o of cmd.options)
        if (old.includes(o.long ?? '')) expect([path, o.long, o.hidden]).toEqual([path, o.long, true]);
      for (const r of RENAMED_OPTIONS.get(cmd) ?? []) expect(old).toContain(r.old);
    }
    const hidden = [...byPath]
      .filter(([, c]) => (c as unknown as { _hidden: boolean })._hidden)
      .map(([p]) => p)
      .filter((p) => p.split(' ').length <= 2 && !p.startsWith('payments '));
    expect(hidden.sort()).toEqual([
      'export',
      'mandates attach-credential',
      'mandates queue-charge',
      'payments',
      'report',
    ]);
  });
});

/**
 * The old spellings at work: each command through the CLI's own parser and code, in this
 * process against the sandbox and this file's database, its output and exit code read as a
 * child's would be (standard output and standard error are captured, not replaced).
 */
describe('each old spelling still works, with a deprecation notice on standard error', () => {
  const { world, cli } = cliInProcess();
  const notice = (old: string, now: string) =>
    `rebill: ${old} is deprecated and goes in the next release; use ${now}\n`;

  /** The old spelling and the new one: same exit 0 and output; the notice only from the old. */
  async function same(old: string[], now: string[], notices: [string, string][]) {
    const a = await cli(...old);
    const b = await cli(...now);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stderr).toBe(notices.map(([o, n]) => notice(o, n)).join(''));
    expect(b.stderr).toBe('');
    return a.stdout.startsWith('{') ? JSON.parse(a.stdout) : a.stdout;
  }

  it('flags and commands, old and new, side by side', { timeout: 240_000 }, async () => {
    const mandate = async (...args: string[]) => {
      const v = await world().verify();
      return cli(
        'mandates',
        'create',
        ...['--currency', 'GBP', '--narrative', 'Vocabulary', '--link', v.href, '--json'],
        ...args,
      );
    };
    const fresh = await mandate('--customer-ref', 'voc-1', '--intent', 'unscheduled', '--amount', '500');
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stderr).toBe('');
    const m1 = JSON.parse(fresh.stdout) as { id: number };
    const old = await mandate(
      ...['--customer', 'voc-2', '--intent', 'instalment', '--instalments', '3', '--total', '900'],
      ...['--interval', '1 month', '--settle', 'none'],
    );
    expect(old.code, old.stderr).toBe(0);
    expect(old.stderr).toBe(
      notice('--customer', '--customer-ref') +
        notice('--total', '--total-amount') +
        notice('--settle', '--settle-mode'),
    );
    const m2 = JSON.parse(old.stdout) as {
      id: number;
      customerRef: string;
      settleMode: string;
      amount: number;
    };
    expect(m2).toMatchObject({ customerRef: 'voc-2', settleMode: 'none', amount: 300 });
    // both spellings of one flag: refused, naming it
    const both = await cli('mandates', 'list', '--customer', 'a', '--customer-ref', 'b');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--customer-ref: give --customer-ref or --customer, not both');

    const updated = await cli(
      'mandates',
      'update',
      String(m2.id),
      '--settle',
      'full',
      '--effective',
      'now',
      '--json',
    );
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stderr).toBe(notice('--settle', '--settle-mode'));
    // scheduled behind the cycle due now: the change is what the flag asked for
    const changes = await cli('mandates', 'changes', String(m2.id), '--json');
    expect(JSON.parse(changes.stdout).items).toEqual([
      expect.objectContaining({ id: JSON.parse(updated.stdout).change.id, changes: { settleMode: 'full' } }),
    ]);

    await same(
      ['mandates', 'list', '--customer', 'voc', '--json'],
      ['mandates', 'list', '--customer-ref', 'voc', '--json'],
      [['--customer', '--customer-ref']],
    );

    const queued = await cli('mandates', 'queue-charge', String(m1.id), '--json');
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stderr).toBe(notice('rebill mandates queue-charge', 'rebill mandates charge'));
    const charged = await cli('mandates', 'charge', String(m1.id), '--json');
    expect(charged.code, charged.stderr).toBe(0);
    expect(charged.stderr).toBe('');
    const chargeIds = [JSON.parse(queued.stdout).chargeId, JSON.parse(charged.stdout).chargeId] as number[];

    const link = await world().verify();
    const attached = await cli('mandates', 'attach-credential', String(m2.id), '--link', link.href, '--json');
    expect(attached.code, attached.stderr).toBe(0);
    expect(attached.stderr).toBe(notice('rebill mandates attach-credential', 'rebill mandates credential'));
    const card = join(tmpdir(), `rebill-voc-card-${process.pid}`);
    writeFileSync(card, '4444333322221111\n');
    const holder = await cli(
      ...['mandates', 'credential', String(m2.id), '--card-number-file', card, '--expiry', '12/2030'],
      ...['--card-holder', 'Ada Lovelace', '--json'],
    );
    expect(holder.code, holder.stderr).toBe(0);
    rmSync(card);
    expect(holder.stderr).toBe(notice('--card-holder', '--card-holder-name'));

    const at = new Date(Date.now() + 60_000).toISOString();
    const ran = await cli('run', '--at', at, '--mandate', String(m1.id), '--json');
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stderr).toBe(notice('--at', '--as-of') + notice('--mandate', '--mandate-id'));
    expect(JSON.parse(ran.stdout)).toMatchObject({ counts: { authorized: 2 } });

    await same(
      ['charges', 'list', '--mandate', String(m1.id), '--json'],
      ['charges', 'list', '--mandate-id', String(m1.id), '--json'],
      [['--mandate', '--mandate-id']],
    );
    const events = await same(
      ['events', 'list', '--mandate', String(m1.id), '--json'],
      ['events', 'list', '--mandate-id', String(m1.id), '--json'],
      [['--mandate', '--mandate-id']],
    );
    expect(events.items.length).toBeGreaterThan(2);
    const window = ['--from', '2026-01-01', '--to', '2028-01-01'];
    await same(
      ['forecast', ...window, '--mandate', String(m2.id), '--json'],
      ['forecast', ...window, '--mandate-id', String(m2.id), '--json'],
      [['--mandate', '--mandate-id']],
    );
    await same(
      ['report', 'summary', ...window, '--json'],
      ['reports', 'summary', ...window, '--json'],
      [['rebill report', 'rebill reports']],
    );
    await same(
      ['export', 'mandates', ...window],
      ['exports', 'mandates', ...window],
      [['rebill export', 'rebill exports']],
    );
    await same(
      ['payments', 'show', String(chargeIds[0]), '--json'],
      ['charges', 'show', String(chargeIds[0]), '--json'],
      [['rebill payments show', 'rebill charges show']],
    );
    const asked = await cli('payments', 'events', String(chargeIds[0]), '--json');
    expect(asked.code, asked.stderr).toBe(0);
    expect(asked.stderr).toBe(notice('rebill payments events', 'rebill charges query'));
    expect(JSON.parse(asked.stdout)).toMatchObject({ chargeId: chargeIds[0], found: true });
    // a settled payment has no reversal link: both spellings get the same refusal (exit 4)
    const reversed = await cli('payments', 'reverse', String(chargeIds[0]), '--json');
    const reversal = await cli('charges', 'reversal', String(chargeIds[1]), '--json');
    expect([reversed.code, reversal.code]).toEqual([4, 4]);
    expect(reversed.stderr).toMatch(
      /^rebill: rebill payments reverse is deprecated and goes in the next release; use rebill charges reversal\nrebill: charge \d+: reversal is not available/,
    );
    expect(reversal.stderr).toMatch(/^rebill: charge \d+: reversal is not available/);
    await same(
      ['paypal', 'list', '--customer', 'voc', '--json'],
      ['paypal', 'list', '--customer-ref', 'voc', '--json'],
      [['--customer', '--customer-ref']],
    );
  });
});
