import { Readable, Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApp } from '../../src/app.ts';
import { showMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { fixedClock } from '../../src/clock.ts';
import { legacyStatus } from '../../src/legacy/erase.ts';
import { importLegacy } from '../../src/legacy/import.ts';
import { readCsv } from '../../src/legacy/reader.ts';
import { createLogger } from '../../src/logger.ts';
import { startWorld, type World } from '../support/world.ts';

const PAN = '4444333322221111';
const PAN2 = '5555555555554444';
const DPAN = '4895370012003478';

const header =
  'legacy_id,customer_ref,intent,amount,currency,interval,next_charge_at,timezone,instalments_total,instalments_paid,entity,narrative,instrument_type,card_number,expiry_month,expiry_year,card_holder_name,token_href,dpan,scheme_reference';

describe('legacy card-on-file mandates end to end', () => {
  let w: World;
  const logs: string[] = [];
  beforeAll(async () => {
    w = await startWorld();
  });
  afterAll(async () => w?.close());

  it('imports, migrates each mandate once, continues the chain with recurring links, and leaves no card number', async () => {
    const t0 = new Date('2026-12-01T08:00:00Z');
    const csv = [
      header,
      `L-1,cust-a,subscription,1999,GBP,1 month,2026-12-01,Europe/London,,,default,Legacy monthly,card/plain,${PAN},12,2030,Ada Lovelace,,,`,
      `L-2,cust-a,subscription,500,GBP,1 month,2026-12-01,Europe/London,,,default,Legacy add-on,card/plain,${PAN},12,2030,Ada Lovelace,,,`,
      `L-3,cust-b,instalment,2500,EUR,1 month,2026-12-01,Europe/Paris,4,1,default,Legacy 4x,card/token,,,,,https://try.access.worldpay.com/tokens/abc123,,`,
      `L-4,cust-c,subscription,1500,GBP,1 month,2026-12-01,UTC,,,default,Legacy Apple Pay,card/networkToken+applepay,,1,2029,Grace Hopper,,${DPAN},`,
      `L-5,cust-d,subscription,700,GBP,1 month,2026-12-01,UTC,,,default,Legacy expiring,card/plain,${PAN2},12,2026,Alan Turing,,,`,
    ].join('\n');
    const report = await importLegacy(w.t.database, readCsv(Readable.from([csv])), {
      key: w.config.encryptionKey,
      now: t0,
    });
    expect(report).toMatchObject({ read: 5, imported: 5, rejectedRows: 0 });
    expect((await legacyStatus(w.t.database)).withCardData).toBe(4);

    const sink = new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    const app = await openApp(w.config, {
      database: w.t.database,
      clock: fixedClock(t0),
      logger: createLogger({ level: 'debug', destination: sink }),
    });
    try {
      const r1 = await runBilling(app, { asOf: new Date('2026-12-01T09:00:00Z'), trigger: 'test' });
      expect(r1.counts).toMatchObject({ authorized: 5, needsNewCredential: 0 });
      // L-5's card expired at the end of 12/2026: its January charge is not sent
      const r2 = await runBilling(app, { asOf: new Date('2027-01-01T09:00:00Z'), trigger: 'test' });
      expect(r2.counts).toMatchObject({ authorized: 4, needsNewCredential: 1 });
    } finally {
      await app.close();
    }
    const ledger = w.sandbox.ledger();
    const migrations = ledger.filter((e) => e.op === 'migrate');
    // L-1 and L-2 share one card: one credential, one migration, one chain
    expect(migrations).toHaveLength(4);
    expect(migrations.every((e) => e.outcome === 'authorized')).toBe(true);
    const chains = new Set(migrations.map((e) => e.chainId));
    expect(chains.size).toBe(4);
    const recurring = ledger.filter((e) => e.op === 'authorize' && chains.has(e.chainId!));
    // cycle 0 of L-2 and every cycle 1 went through the chain's recurring links, never a stale one
    expect(recurring).toHaveLength(5);
    expect(recurring.every((e) => e.outcome === 'authorized' && e.stale === false)).toBe(true);

    const ids = await w.t.database.rows(
      sql`select id, legacy_id from mandates where legacy_id is not null order by legacy_id`,
    );
    const l1 = await showMandate(w.t.database, Number(ids[0]!.id));
    const l2 = await showMandate(w.t.database, Number(ids[1]!.id));
    expect(l1.credential.id).toBe(l2.credential.id);
    expect(l1.credential.holdsCardData).toBe(false);
    expect(l1.credential.lastFour).toBe('1111');
    expect(l1.links.filter((l) => l.rel === 'payments:recurringAuthorize').length).toBeGreaterThanOrEqual(3);
    const l5 = await showMandate(w.t.database, Number(ids[4]!.id));
    expect(l5.status).toBe('needs_new_credential');
    expect(l5.charges.map((c) => c.state)).toEqual(['settling', 'needs_new_credential']);
    expect(ledger.filter((e) => e.amount === 700 && e.outcome === 'authorized')).toHaveLength(1);

    expect((await legacyStatus(w.t.database)).withCardData).toBe(0);
    // No card number or DPAN anywhere: every text and json column of every table.
    const columns = await w.t.database.rows(sql`select table_name, column_name from information_schema.columns
      where table_schema = 'public' and data_type in ('text', 'jsonb', 'character varying')`);
    for (const c of columns) {
      for (const secret of [PAN, PAN2, DPAN]) {
        const hits = await w.t.database.rows(
          sql`select count(*)::int as n from ${sql.identifier(String(c.table_name))} where ${sql.identifier(String(c.column_name))}::text like ${`%${secret}%`}`,
        );
        expect(Number(hits[0]?.n), `${String(c.table_name)}.${String(c.column_name)}`).toBe(0);
      }
    }
    const allLogs = logs.join('');
    expect(allLogs.length).toBeGreaterThan(0);
    for (const secret of [PAN, PAN2, DPAN]) expect(allLogs).not.toContain(secret);
  });
});
