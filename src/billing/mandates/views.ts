import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import type { attempts, charges, credentials, links, mandates } from '../../db/schema.ts';
import { checkSearchText, customersByPrefix, searchId } from '../../db/search.ts';
import type { RawRow } from '../../db/values.ts';
import { NotFoundError } from '../../errors.ts';

export interface MandateView {
  id: number;
  customerRef: string;
  intent: string;
  amount: number;
  currency: string;
  entity: string;
  narrative: string;
  gateway: string;
  status: string;
  statusReason: string | null;
  interval: string | null;
  timezone: string;
  startAt: string;
  anchorAt: string;
  endAt: string | null;
  instalmentsTotal: number | null;
  lastInstalmentAmount: number | null;
  nextCycle: number;
  nextDueAt: string | null;
  cancelAtPeriodEnd: boolean;
  settleMode: string;
  /** With settleMode partial: the share of each authorization settled. */
  settlePercent: number | null;
  legacyId: string | null;
  /** Credit owed to the customer (minor units), taken off the next charges. */
  creditBalance: number;
  credential: {
    id: number;
    /** Worldpay card API: `v6` (link chain) or `v7` (merchant-initiated, by scheme reference). */
    api: string;
    instrumentType: string;
    /** v7: the first customer-initiated payment's scheme reference, byte for byte (sent on every charge). */
    schemeReference: string | null;
    status: string;
    brand: string | null;
    lastFour: string | null;
    expiry: string | null;
    currentLink: string | null;
    holdsCardData: boolean;
  };
  createdAt: string;
}

/** A row of `viewSelect`: the mandate, and what the view shows of its customer and credential. */
export type ViewRow = RawRow<typeof mandates> &
  Pick<
    RawRow<typeof credentials>,
    'api' | 'instrument_type' | 'scheme_reference' | 'brand' | 'last_four' | 'expiry_month' | 'expiry_year'
  > & {
    customer_ref: string;
    credential_status: string;
    holds_card_data: boolean;
    current_link: string | null;
  };

export function toView(r: ViewRow): MandateView {
  const em = r.expiry_month;
  const ey = r.expiry_year;
  return {
    id: r.id,
    customerRef: r.customer_ref,
    intent: r.intent,
    amount: r.amount,
    currency: r.currency,
    entity: r.entity,
    narrative: r.narrative,
    gateway: r.gateway,
    status: r.status,
    statusReason: r.status_reason,
    interval: r.interval_unit ? `${r.interval_count} ${r.interval_unit}` : null,
    timezone: r.timezone,
    startAt: r.start_at.toISOString(),
    anchorAt: r.anchor_at.toISOString(),
    endAt: r.end_at?.toISOString() ?? null,
    instalmentsTotal: r.instalments_total,
    lastInstalmentAmount: r.last_instalment_amount,
    nextCycle: r.next_cycle,
    nextDueAt: r.next_due_at?.toISOString() ?? null,
    cancelAtPeriodEnd: r.cancel_at_period_end,
    settleMode: r.settle_mode,
    settlePercent: r.settle_percent,
    legacyId: r.legacy_id,
    creditBalance: r.credit_balance,
    credential: {
      id: r.credential_id,
      api: r.api,
      instrumentType: r.instrument_type,
      schemeReference: r.scheme_reference,
      status: r.credential_status,
      brand: r.brand,
      lastFour: r.last_four,
      expiry: em !== null && ey !== null ? `${String(em).padStart(2, '0')}/${ey}` : null,
      currentLink: r.current_link,
      holdsCardData: r.holds_card_data,
    },
    createdAt: r.created_at.toISOString(),
  };
}

export const viewSelect = sql`select m.*, cu.ref as customer_ref, cr.api, cr.instrument_type, cr.scheme_reference, cr.status as credential_status, cr.brand,
  cr.last_four, cr.expiry_month, cr.expiry_year, (cr.encrypted_pan is not null) as holds_card_data, l.href as current_link
  from mandates m join customers cu on cu.id = m.customer_id join credentials cr on cr.id = m.credential_id
  left join links l on l.id = cr.current_link_id`;

export async function getMandate(database: Database, id: number): Promise<MandateView> {
  const rows = await database.rows<ViewRow>(sql`${viewSelect} where m.id = ${id}`);
  if (!rows[0]) throw new NotFoundError('mandate', id);
  return toView(rows[0]);
}

export interface ListFilter {
  status?: string | undefined;
  intent?: string | undefined;
  /** Customer refs starting with this (`ada` finds `ada-1`). */
  customerRef?: string | undefined;
  /** The search (src/db/search.ts): a mandate id, a transaction reference, or a customer ref prefix. */
  q?: string | undefined;
  gateway?: string | undefined;
  limit?: number | undefined;
  /** Keyset pagination: mandates with id > after. */
  after?: number | undefined;
}

export async function listMandates(
  database: Database,
  f: ListFilter = {},
): Promise<{ items: MandateView[]; next: number | null }> {
  const where: SQL[] = [sql`true`];
  if (f.status) where.push(sql`m.status = ${f.status}`);
  if (f.intent) where.push(sql`m.intent = ${f.intent}`);
  if (f.customerRef !== undefined) {
    checkSearchText('customerRef', f.customerRef);
    where.push(sql`m.customer_id = any(array(${customersByPrefix(f.customerRef)}))`);
  }
  if (f.q !== undefined) where.push(mandateSearch(f.q));
  if (f.gateway) where.push(sql`m.gateway = ${f.gateway}`);
  if (f.after !== undefined) where.push(sql`m.id > ${f.after}`);
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 1000);
  const rows = await database.rows<ViewRow>(
    sql`${viewSelect} where ${sql.join(where, sql` and `)} order by m.id limit ${limit + 1}`,
  );
  const items = rows.slice(0, limit).map(toView);
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}

/** The mandates a search names: by id, by a transaction reference of one of its charges, by customer ref prefix. */
function mandateSearch(q: string): SQL {
  checkSearchText('q', q);
  const id = searchId(q);
  return sql`m.id = any(array(
      ${id === null ? sql`` : sql`select ${id}::bigint union `}
      select c.mandate_id from attempts a join charges c on c.id = a.charge_id where a.transaction_reference = ${q}
      union select c.mandate_id from payment_actions pa join charges c on c.id = pa.charge_id where pa.reference = ${q}
      union select m2.id from mandates m2 where m2.customer_id = any(array(${customersByPrefix(q)}))))`;
}

export interface MandateDetail extends MandateView {
  links: { id: number; rel: string; href: string; source: string; current: boolean; createdAt: string }[];
  charges: {
    id: number;
    cycle: number;
    amount: number;
    currency: string;
    dueAt: string;
    state: string;
    stateReason: string | null;
    nextAttemptAt: string | null;
    attempts: {
      no: number;
      reference: string;
      state: string;
      refusalCode: string | null;
      adviceCode: string | null;
      decision: string | null;
      decisionReason: string | null;
      correlationId: string | null;
      attemptedAt: string;
    }[];
  }[];
}

export async function showMandate(database: Database, id: number): Promise<MandateDetail> {
  const m = await getMandate(database, id);
  const linkRows = await database.rows<
    Pick<RawRow<typeof links>, 'id' | 'rel' | 'href' | 'source' | 'created_at'> & { current: boolean | null }
  >(sql`select l.id, l.rel, l.href, l.source, l.created_at, (l.id = c.current_link_id) as current
      from links l join credentials c on c.id = l.credential_id where l.credential_id = ${m.credential.id} order by l.id`);
  const chargeRows = await database.rows<RawRow<typeof charges>>(
    sql`select * from charges where mandate_id = ${id} order by cycle`,
  );
  const attemptRows = await database.rows<
    RawRow<typeof attempts>
  >(sql`select a.* from attempts a join charges c on c.id = a.charge_id
      where c.mandate_id = ${id} order by a.charge_id, a.attempt_no`);
  return {
    ...m,
    links: linkRows.map((l) => ({
      id: l.id,
      rel: l.rel,
      href: l.href,
      source: l.source,
      current: l.current === true,
      createdAt: l.created_at.toISOString(),
    })),
    charges: chargeRows.map((c) => ({
      id: c.id,
      cycle: c.cycle,
      amount: c.amount,
      currency: c.currency,
      dueAt: c.due_at.toISOString(),
      state: c.state,
      stateReason: c.state_reason,
      nextAttemptAt: c.next_attempt_at?.toISOString() ?? null,
      attempts: attemptRows
        .filter((a) => a.charge_id === c.id)
        .map((a) => ({
          no: a.attempt_no,
          reference: a.transaction_reference,
          state: a.state,
          refusalCode: a.refusal_code,
          adviceCode: a.advice_code,
          decision: a.decision,
          decisionReason: a.decision_reason,
          correlationId: a.correlation_id,
          attemptedAt: a.attempted_at.toISOString(),
        })),
    })),
  };
}
