import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * One SQL layer for state: every write of a state column (`update <table> set ... state =` or
 * `status =`, in SQL text or as drizzle's `.update(table).set({ state: ... })`) and every row
 * of the audit trail (`insert into audit_log`, or drizzle's `.insert(auditLog)`) is written
 * under src/billing/sql/, where its guard is built from the machine tables of
 * src/domain/lifecycle.ts. Anywhere else in src/ it fails this test, which names file:line.
 */
const ROOT = join(import.meta.dirname, '../..');
const ALLOWED = 'src/billing/sql/';

/** Every state write and audit insert in a file's text, as `line: what`. */
function stateWrites(text: string): { line: number; what: string }[] {
  const out: { line: number; what: string }[] = [];
  const lineOf = (i: number) => text.slice(0, i).split('\n').length;
  // SQL: `update <table> [[as] alias] set <assignments>` up to where/from/returning or the end
  // of the template; a `state =` or `status =` among the assignments (not `state_reason =`).
  const update =
    /\bupdate\s+(?:only\s+)?"?([a-z_]+)"?(?:\s+(?:as\s+)?(?!set\b)[a-z_]+)?\s+set\b([\s\S]*?)(?=\bwhere\b|\bfrom\b|\breturning\b|`|$)/gi;
  for (const m of text.matchAll(update))
    if (/(^|[\s,(."])"?(state|status)"?\s*=/i.test(m[2] ?? ''))
      out.push({
        line: lineOf(m.index),
        what: `update ${m[1]} set ${m[2]?.match(/(state|status)\b/i)?.[0]}`,
      });
  for (const m of text.matchAll(/\binsert\s+into\s+"?audit_log"?/gi))
    out.push({ line: lineOf(m.index), what: 'insert into audit_log' });
  // drizzle: .update(table).set({ ..., state: ... })
  for (const m of text.matchAll(/\.update\(\s*([\w.]+)\s*\)\s*\.set\(\s*\{([\s\S]*?)\}\s*\)/g))
    if (/(^|[\s,{])['"]?(state|status)['"]?\s*:/.test(m[2] ?? ''))
      out.push({ line: lineOf(m.index), what: `drizzle update(${m[1]}).set({ state/status })` });
  for (const m of text.matchAll(/\.insert\(\s*(?:\w+\.)?auditLog\s*\)/g))
    out.push({ line: lineOf(m.index), what: 'drizzle insert(auditLog)' });
  return out;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('one SQL layer for state', () => {
  it('catches the forms a state write takes', () => {
    const tpl = (s: string) => `const q = sql\`${s}\`;`;
    expect(stateWrites(tpl(`update charges set state = 'x' where id = 1`))).toHaveLength(1);
    expect(
      stateWrites(
        tpl(
          `\n      update charges c set\n        state = \${target},\n        x = 1\n       where c.id = 1`,
        ),
      ),
    ).toEqual([{ line: 2, what: 'update charges set state' }]);
    expect(stateWrites(tpl(`update billing_runs\n  set status = 'interrupted' where true`))).toHaveLength(1);
    expect(stateWrites(tpl(`update credentials set current_link_id = 1, status = 'blocked'`))).toHaveLength(
      1,
    );
    expect(
      stateWrites(tpl(`with r as (update billing_runs set counts = 1, status = \${s} where id = 1)`)),
    ).toHaveLength(1);
    expect(stateWrites(tpl(`insert into audit_log (entity_type) values ('x')`))).toHaveLength(1);
    expect(stateWrites(`db.update(credentials).set({ status: 'blocked' }).where(x)`)).toHaveLength(1);
    expect(stateWrites(`db.update(schema.charges)\n  .set({ amount: 1, state: 'failed' })`)).toHaveLength(1);
    expect(stateWrites(`db.insert(auditLog).values({})`)).toHaveLength(1);
    // Not state writes: other columns, a state read in the guard, a no-op upsert.
    expect(stateWrites(tpl(`update charges set state_reason = 'x' where state = 'pending'`))).toEqual([]);
    expect(stateWrites(tpl(`update mandates set next_cycle = 1 where status = 'active'`))).toEqual([]);
    expect(stateWrites(`db.update(credentials).set({ encryptedPan: null })`)).toEqual([]);
  });

  it('has no state write or audit insert in src/ outside src/billing/sql/', () => {
    const found: string[] = [];
    for (const file of sources(join(ROOT, 'src'))) {
      const rel = relative(ROOT, file).replaceAll('\\', '/');
      if (rel.startsWith(ALLOWED)) continue;
      for (const w of stateWrites(readFileSync(file, 'utf8'))) found.push(`${rel}:${w.line} ${w.what}`);
    }
    expect(found, `state writes outside ${ALLOWED}:\n${found.join('\n')}`).toEqual([]);
  });

  it('finds the state writes that are there (the scan is not blind)', () => {
    const inSql = sources(join(ROOT, 'src/billing/sql')).flatMap((f) => stateWrites(readFileSync(f, 'utf8')));
    expect(inSql.length).toBeGreaterThan(20);
  });
});
