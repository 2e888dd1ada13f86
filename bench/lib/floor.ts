import type { Sql } from 'postgres';
import { loadConfig } from '../../src/config.ts';
import type { AuthorizeResult, Gateway } from '../../src/gateways/types.ts';
import { worldpayGatewayFromConfig } from '../../src/gateways/worldpay/index.ts';
import { verifyChains } from './chains.ts';
import { ownDatabase } from './database.ts';
import { seedDueMandates } from './seed.ts';

/**
 * The floor: the least a correct charge loop can do on the same schema, sandbox, pool and
 * client, so rebill's throughput has a reference that includes a database (the bare undici
 * ceiling has none, and no design reaches half of it).
 *
 * Correct means what the protocol needs and nothing else:
 *  - per batch, one statement claims due charges and writes their attempts ahead, committed
 *    before any request is sent (a crash leaves a reference to reconcile, never a silent charge);
 *  - one credential's charges go in turn, each on the link the previous one returned;
 *  - per charge, the authorization, then one prepared statement for the outcome, the new link,
 *    the credential's newest link and the settle written ahead, then the settle request;
 *  - settle acceptances are flushed in one statement every 50 ms.
 * It leaves out what rebill adds on top: the audit trail and the events it feeds, dunning and its
 * ledger, leases and fencing, reconciliation, the run's bookkeeping, the state table guards.
 * PostgreSQL only (it drives postgres.js directly).
 */
export interface FloorResult {
  charges: number;
  seconds: number;
  chargesPerSecond: number;
}

const BATCH = 500;

export async function floorOnce(
  sandboxUrl: string,
  p: { mandates: number; chains: number; concurrency: number; maxInFlight: number },
  opts: { serverUrl: string; log: (line: string) => void },
): Promise<FloorResult> {
  const own = await ownDatabase('rebill_floor', opts.serverUrl, {
    maxConnections: Math.min(20, p.concurrency + 2),
  });
  const prefix = `f${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 12);
  try {
    const chains = await verifyChains(sandboxUrl, p.chains, { concurrency: 32 });
    const asOf = new Date('2026-03-01T00:00:00Z');
    await seedDueMandates(own.database, { mandates: p.mandates, chains, dueAt: asOf });
    const config = loadConfig({
      WORLDPAY_URL: sandboxUrl,
      WORLDPAY_USERNAME: 'sandbox',
      WORLDPAY_PASSWORD: 'sandbox',
      WORLDPAY_MAX_IN_FLIGHT: String(p.maxInFlight),
      WORLDPAY_TIMEOUT_MS: '30000',
      REBILL_LOG_LEVEL: 'silent',
    });
    const gateway = worldpayGatewayFromConfig(config.worldpay);
    const sql = own.database.postgres!;
    try {
      const t0 = performance.now();
      const charges = await run(sql, gateway, { asOf, prefix, concurrency: p.concurrency });
      const seconds = (performance.now() - t0) / 1000;
      opts.log(`floor: ${charges} charges in ${seconds.toFixed(1)}s`);
      if (charges !== p.mandates) throw new Error(`floor charged ${charges} of ${p.mandates}`);
      const settled = await sql`select count(*)::int as n from payment_actions where state = 'accepted'`;
      if (settled[0]?.n !== p.mandates) throw new Error(`floor settled ${settled[0]?.n} of ${p.mandates}`);
      return { charges, seconds, chargesPerSecond: charges / seconds };
    } finally {
      await gateway.close();
    }
  } finally {
    await own.drop();
  }
}

interface Claimed {
  charge_id: string;
  attempt_id: string;
  credential_id: string;
  amount: string;
  currency: string;
  reference: string;
  href: string;
}

async function run(
  sql: Sql,
  gateway: Gateway,
  o: { asOf: Date; prefix: string; concurrency: number },
): Promise<number> {
  const asOf = o.asOf.toISOString();
  // Materialise every due cycle and advance its mandate, in one statement.
  await sql`with m as (
      update mandates set next_cycle = next_cycle + 1, next_due_at = next_due_at + interval '1 month'
       where status = 'active' and next_due_at <= ${asOf}::timestamptz
      returning id, next_cycle - 1 as cycle, amount, currency, next_due_at - interval '1 month' as due_at)
    insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at)
    select id, cycle, amount, currency, due_at, due_at from m`;

  const accepted: number[] = [];
  const flusher = setInterval(() => void flush(), 50);
  let flushing: Promise<unknown> = Promise.resolve();
  function flush() {
    if (accepted.length === 0) return flushing;
    const ids = accepted.splice(0);
    flushing = flushing.then(
      () =>
        sql`update payment_actions set state = 'accepted', completed_at = now() where id = any(${sql.array(ids)}::bigint[])`,
    );
    return flushing;
  }

  let charged = 0;
  const claim = () =>
    sql<Claimed[]>`with c as (
        select c.id, c.mandate_id, c.cycle, c.amount, c.currency, m.credential_id, l.href
          from charges c join mandates m on m.id = c.mandate_id
          join credentials cr on cr.id = m.credential_id join links l on l.id = cr.current_link_id
         where c.state = 'pending' and c.next_attempt_at <= ${asOf}::timestamptz
         order by c.next_attempt_at, c.id limit ${BATCH} for update of c skip locked
      ), u as (
        update charges ch set state = 'attempting', attempt_count = 1 from c where ch.id = c.id
      ), a as (
        insert into attempts (charge_id, credential_id, attempt_no, transaction_reference, kind, link_href, fence, attempted_at)
        select c.id, c.credential_id, 1, ${o.prefix} || '-' || c.mandate_id || '-' || c.cycle || '-1', 'recurring', c.href, 0, now()
          from c returning id, charge_id, transaction_reference
      )
      select c.id as charge_id, a.id as attempt_id, c.credential_id, c.amount, c.currency, a.transaction_reference as reference, c.href
        from c join a on a.charge_id = c.id`;

  async function charge(c: Claimed, href: string): Promise<string | undefined> {
    const r: AuthorizeResult = await gateway.authorize({
      reference: c.reference,
      instrument: { type: 'link', href },
      value: { amount: Number(c.amount), currency: c.currency },
      entity: 'default',
      narrative: 'Bench',
      intent: 'subscription',
    });
    if (r.outcome !== 'authorized') throw new Error(`floor: ${c.reference} ${r.outcome}`);
    const next = r.links['payments:recurringAuthorize'];
    const settleRef = `${c.reference}-S1`;
    const rows = await sql`with at as (
        update attempts set state = 'authorized', outcome = 'authorized', gateway_payment_id = ${r.paymentId}, completed_at = now()
         where id = ${c.attempt_id}
      ), lk as (
        insert into links (credential_id, attempt_id, source, rel, href)
        values (${c.credential_id}, ${c.attempt_id}, 'authorize', 'payments:recurringAuthorize', ${next ?? href}) returning id
      ), cr as (
        update credentials set current_link_id = (select id from lk) where id = ${c.credential_id}
      ), ch as (
        update charges set state = 'settling', authorized_attempt_id = ${c.attempt_id} where id = ${c.charge_id}
      )
      insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
      values (${c.charge_id}, ${c.attempt_id}, 'settle', ${settleRef}, ${c.amount}, ${c.currency}, ${r.links['payments:settle'] ?? null})
      returning id`;
    const s = await gateway.action({
      kind: 'settle',
      links: r.links,
      paymentId: r.paymentId,
      reference: settleRef,
    });
    if (s.outcome !== 'accepted') throw new Error(`floor: settle of ${c.reference} ${s.outcome}`);
    accepted.push(Number(rows[0]!.id));
    charged++;
    return next;
  }

  // A pipeline like rebill's: senders take credential groups; the next batch is claimed while
  // C or fewer groups wait.
  const groups: Claimed[][] = [];
  let done = false;
  const refill = async () => {
    const batch = await claim();
    if (batch.length === 0) {
      done = true;
      return;
    }
    const byCredential = new Map<string, Claimed[]>();
    for (const c of batch) {
      const g = byCredential.get(c.credential_id) ?? [];
      g.push(c);
      byCredential.set(c.credential_id, g);
    }
    groups.push(...byCredential.values());
  };
  let claiming: Promise<void> | null = null;
  const sender = async () => {
    for (;;) {
      if (groups.length <= o.concurrency && !done) claiming ??= refill().finally(() => (claiming = null));
      const g = groups.shift();
      if (!g) {
        if (done && !claiming) return;
        await claiming;
        continue;
      }
      let href = g[0]!.href;
      for (const c of g) href = (await charge(c, href)) ?? href;
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, sender));
  } finally {
    clearInterval(flusher);
    await flush();
  }
  return charged;
}
