import type { Sql } from 'postgres';
import { batcher } from '../../src/billing/charge/batcher.ts';
import { settlesOffSlot } from '../../src/billing/charge/off-slot.ts';
import { loadConfig } from '../../src/config.ts';
import type { AuthorizeResult, Gateway } from '../../src/gateways/types.ts';
import { worldpayGatewayFromConfig } from '../../src/gateways/worldpay/index.ts';
import { silentLogger } from '../../src/logger.ts';
import { verifyChains } from './chains.ts';
import { ownDatabase } from './database.ts';
import { seedDueMandates } from './seed.ts';

/**
 * The floor: the best correct charge loop we know on the same PostgreSQL, sandbox, pool and
 * client, so rebill's throughput has a reference that includes a database (the bare undici
 * ceiling has none). Whenever rebill learns a trick, the floor learns it too.
 *
 * Correct means the protocol's guarantees and nothing else:
 *  - per batch, one statement claims due charges and writes their attempts ahead, committed
 *    before any request is sent (a crash leaves a reference to reconcile, never a silent charge);
 *  - one credential's charges go in turn, each on the link the previous one returned;
 *  - a charge's outcome, its new link, the credential's newest link and its settle written ahead
 *    are committed before the settle is sent.
 * With every economy rebill uses: outcomes and settle acceptances group-committed (rebill's own
 * batcher: what comes back during a commit goes in the next), each batch bound as one jsonb array
 * to one prepared statement, statements pipelined on the pool's connections, the settle off the
 * slot, statistics refreshed as its tables grow, and only the indexes its statements read
 * (`FLOOR_DROPPED_INDEXES`).
 * It leaves out what rebill adds on top (docs/benchmark.md says what each costs): the audit trail
 * and the events it feeds, the launch marker and the holds (an operator's cancel winning at the
 * POST), dunning and its ledger, leases and fencing, reconciliation, the run's bookkeeping, the
 * state table guards' reads of the charge before each move, the indexes rebill's reads need.
 * Every link an answer returns is kept, as rebill keeps it (on the attempt and the settle's
 * action, the recurring one also as the credential's chain row): a refund or a cancel needs them.
 * PostgreSQL only (it drives postgres.js directly).
 */
export interface FloorResult {
  charges: number;
  seconds: number;
  chargesPerSecond: number;
  /** WAL the server wrote during the loop / charges (its insert position: the whole server's). */
  walBytesPerCharge: number;
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
      const lsn = async () =>
        Number((await sql`select pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::float8 as b`)[0]?.b);
      const wal0 = await lsn();
      const t0 = performance.now();
      const charges = await run(sql, gateway, { asOf, prefix, concurrency: p.concurrency });
      const seconds = (performance.now() - t0) / 1000;
      const walBytesPerCharge = ((await lsn()) - wal0) / charges;
      opts.log(`floor: ${charges} charges in ${seconds.toFixed(1)}s`);
      if (charges !== p.mandates) throw new Error(`floor charged ${charges} of ${p.mandates}`);
      const settled = await sql`select count(*)::int as n from payment_actions where state = 'accepted'`;
      if (settled[0]?.n !== p.mandates) throw new Error(`floor settled ${settled[0]?.n} of ${p.mandates}`);
      return { charges, seconds, chargesPerSecond: charges / seconds, walBytesPerCharge };
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

/**
 * Indexes the floor's statements never read: dropped from its database before the loop, so it
 * maintains only what its queries need (primary keys, the claim's index, the unique constraints
 * that make a second send of one reference fail). Rebill keeps them for its reads: recovery,
 * the ledger, the console, reports.
 */
export const FLOOR_DROPPED_INDEXES = [
  'charges_state_idx',
  'attempts_credential_time_idx',
  'attempts_open_idx',
  'attempts_attempted_at_idx',
  'links_credential_idx',
  'links_attempt_idx',
  'payment_actions_charge_idx',
];

async function run(
  sql: Sql,
  gateway: Gateway,
  o: { asOf: Date; prefix: string; concurrency: number },
): Promise<number> {
  const asOf = o.asOf.toISOString();
  for (const index of FLOOR_DROPPED_INDEXES) await sql.unsafe(`drop index if exists ${index}`);
  // Materialise every due cycle and advance its mandate, in one statement.
  await sql`with m as (
      update mandates set next_cycle = next_cycle + 1, next_due_at = next_due_at + interval '1 month'
       where status = 'active' and next_due_at <= ${asOf}::timestamptz
      returning id, next_cycle - 1 as cycle, amount, currency, next_due_at - interval '1 month' as due_at)
    insert into charges (mandate_id, cycle, amount, currency, due_at, next_attempt_at)
    select id, cycle, amount, currency, due_at, due_at from m`;
  await sql`analyze charges`;

  // Group commit, as rebill's (the same batcher): what comes back while a commit runs goes in
  // the next one, bound as one jsonb array to one prepared statement.
  const quiet = { logger: silentLogger };
  const outcomes = batcher(quiet, 'floor outcome', async (items: Outcome[]) => {
    const rows = await sql<{ charge_id: string; id: string }[]>`with v as (
        select * from jsonb_to_recordset(${JSON.stringify(items)}::jsonb) as v(charge_id bigint, attempt_id bigint,
          credential_id bigint, payment_id text, href text, settle_reference text, amount bigint, currency text, settle_link text,
          links jsonb)
      ), at as (
        update attempts a set state = 'authorized', outcome = 'authorized', gateway_payment_id = v.payment_id, links = v.links,
               completed_at = now()
          from v where a.id = v.attempt_id
      ), lk as (
        insert into links (credential_id, attempt_id, source, rel, href)
        select credential_id, attempt_id, 'authorize', 'payments:recurringAuthorize', href from v
        returning id, credential_id
      ), newest as (
        select credential_id, max(id) as id from lk group by credential_id
      ), locked as (
        select id from credentials where id in (select credential_id from newest) order by id for update
      ), cr as (
        update credentials c set current_link_id = newest.id from newest join locked on locked.id = newest.credential_id
         where c.id = newest.credential_id
      ), ch as (
        update charges c set state = 'settling', authorized_attempt_id = v.attempt_id from v where c.id = v.charge_id
      )
      insert into payment_actions (charge_id, attempt_id, kind, reference, amount, currency, link_href)
      select charge_id, attempt_id, 'settle', settle_reference, amount, currency, settle_link from v
      returning id, charge_id`;
    const byCharge = new Map(rows.map((r) => [Number(r.charge_id), Number(r.id)]));
    return items.map((it) => byCharge.get(it.charge_id) ?? 0);
  });
  const acceptances = batcher(quiet, 'floor acceptance', async (items: Acceptance[]) => {
    await sql`update payment_actions pa set state = 'accepted', links = v.links, completed_at = now()
      from jsonb_to_recordset(${JSON.stringify(items)}::jsonb) as v(id bigint, links jsonb) where pa.id = v.id`;
    return items.map(() => true);
  });
  // Settles off the slot, as rebill's: at most C wait for their answers at once.
  const settles = settlesOffSlot(o.concurrency);

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
    const actionId = await outcomes.add({
      charge_id: Number(c.charge_id),
      attempt_id: Number(c.attempt_id),
      credential_id: Number(c.credential_id),
      payment_id: r.paymentId,
      href: next ?? href,
      settle_reference: settleRef,
      amount: Number(c.amount),
      currency: c.currency,
      settle_link: r.links['payments:settle'] ?? null,
      links: Object.entries(r.links),
    });
    if (!actionId) throw new Error(`floor: outcome of ${c.reference} not committed`);
    await settles.add(
      (async () => {
        const s = await gateway.action({
          kind: 'settle',
          links: r.links,
          paymentId: r.paymentId,
          reference: settleRef,
        });
        if (s.outcome !== 'accepted') throw new Error(`floor: settle of ${c.reference} ${s.outcome}`);
        charged++;
        await acceptances.add({ id: actionId, links: s.links });
      })(),
    );
    return next;
  }

  // A pipeline like rebill's: senders take credential groups; the next batch is claimed while
  // C or fewer groups wait.
  const groups: Claimed[][] = [];
  let done = false;
  // Statistics refreshed as rebill's run refreshes them (src/billing/run/statistics.ts): the
  // statements are prepared, and their plans follow the tables' growth only through ANALYZE.
  let claimed = 0;
  let analyzeAt = 1_000;
  let analyzing: Promise<unknown> | null = null;
  const refill = async () => {
    const batch = await claim();
    if (batch.length === 0) {
      done = true;
      return;
    }
    claimed += batch.length;
    if (claimed >= analyzeAt && analyzing === null) {
      while (analyzeAt <= claimed) analyzeAt *= 2;
      analyzing = sql`analyze attempts, payment_actions, links`.then(() => {
        analyzing = null;
      });
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
    await settles.drain();
    await outcomes.close();
    await acceptances.close();
    await analyzing;
  }
  return charged;
}

interface Outcome {
  charge_id: number;
  attempt_id: number;
  credential_id: number;
  payment_id: string;
  href: string;
  settle_reference: string;
  amount: number;
  currency: string;
  settle_link: string | null;
  /** Every link the authorization returned, kept on its attempt as rebill keeps them. */
  links: [string, string][];
}

interface Acceptance {
  id: number;
  links: Record<string, string>;
}
