import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { date, dateOrNull, num, numOrNull, str } from '../../db/values.ts';
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
  legacyId: string | null;
  /** Credit owed to the customer (minor units), taken off the next charges. */
  creditBalance: number;
  credential: {
    id: number;
    instrumentType: string;
    status: string;
    brand: string | null;
    lastFour: string | null;
    expiry: string | null;
    currentLink: string | null;
    holdsCardData: boolean;
  };
  createdAt: string;
}

export function toView(r: Record<string, unknown>): MandateView {
  const em = numOrNull(r.expiry_month);
  const ey = numOrNull(r.expiry_year);
  return {
    id: num(r.id),
    customerRef: String(r.customer_ref),
    intent: String(r.intent),
    amount: num(r.amount),
    currency: String(r.currency),
    entity: String(r.entity),
    narrative: String(r.narrative),
    gateway: String(r.gateway),
    status: String(r.status),
    statusReason: str(r.status_reason),
    interval: r.interval_unit ? `${num(r.interval_count)} ${String(r.interval_unit)}` : null,
    timezone: String(r.timezone),
    startAt: date(r.start_at).toISOString(),
    anchorAt: date(r.anchor_at).toISOString(),
    endAt: dateOrNull(r.end_at)?.toISOString() ?? null,
    instalmentsTotal: numOrNull(r.instalments_total),
    lastInstalmentAmount: numOrNull(r.last_instalment_amount),
    nextCycle: num(r.next_cycle),
    nextDueAt: dateOrNull(r.next_due_at)?.toISOString() ?? null,
    cancelAtPeriodEnd: r.cancel_at_period_end === true,
    settleMode: String(r.settle_mode),
    legacyId: str(r.legacy_id),
    creditBalance: num(r.credit_balance ?? 0),
    credential: {
      id: num(r.credential_id),
      instrumentType: String(r.instrument_type),
      status: String(r.credential_status),
      brand: str(r.brand),
      lastFour: str(r.last_four),
      expiry: em !== null && ey !== null ? `${String(em).padStart(2, '0')}/${ey}` : null,
      currentLink: str(r.current_link),
      holdsCardData: r.holds_card_data === true,
    },
    createdAt: date(r.created_at).toISOString(),
  };
}

export const viewSelect = sql`select m.*, cu.ref as customer_ref, cr.instrument_type, cr.status as credential_status, cr.brand,
  cr.last_four, cr.expiry_month, cr.expiry_year, (cr.encrypted_pan is not null) as holds_card_data, l.href as current_link
  from mandates m join customers cu on cu.id = m.customer_id join credentials cr on cr.id = m.credential_id
  left join links l on l.id = cr.current_link_id`;

export async function getMandate(database: Database, id: number): Promise<MandateView> {
  const rows = await database.rows(sql`${viewSelect} where m.id = ${id}`);
  if (!rows[0]) throw new NotFoundError('mandate', id);
  return toView(rows[0]);
}

export interface ListFilter {
  status?: string | undefined;
  intent?: string | undefined;
  customerRef?: string | undefined;
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
  if (f.customerRef) where.push(sql`cu.ref = ${f.customerRef}`);
  if (f.gateway) where.push(sql`m.gateway = ${f.gateway}`);
  if (f.after !== undefined) where.push(sql`m.id > ${f.after}`);
  const limit = Math.min(Math.max(f.limit ?? 50, 1), 1000);
  const rows = await database.rows(
    sql`${viewSelect} where ${sql.join(where, sql` and `)} order by m.id limit ${limit + 1}`,
  );
  const items = rows.slice(0, limit).map(toView);
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
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
  const links =
    await database.rows(sql`select l.id, l.rel, l.href, l.source, l.created_at, (l.id = c.current_link_id) as current
      from links l join credentials c on c.id = l.credential_id where l.credential_id = ${m.credential.id} order by l.id`);
  const charges = await database.rows(sql`select * from charges where mandate_id = ${id} order by cycle`);
  const attempts = await database.rows(sql`select a.* from attempts a join charges c on c.id = a.charge_id
      where c.mandate_id = ${id} order by a.charge_id, a.attempt_no`);
  return {
    ...m,
    links: links.map((l) => ({
      id: num(l.id),
      rel: String(l.rel),
      href: String(l.href),
      source: String(l.source),
      current: l.current === true,
      createdAt: date(l.created_at).toISOString(),
    })),
    charges: charges.map((c) => ({
      id: num(c.id),
      cycle: num(c.cycle),
      amount: num(c.amount),
      currency: String(c.currency),
      dueAt: date(c.due_at).toISOString(),
      state: String(c.state),
      stateReason: str(c.state_reason),
      nextAttemptAt: dateOrNull(c.next_attempt_at)?.toISOString() ?? null,
      attempts: attempts
        .filter((a) => num(a.charge_id) === num(c.id))
        .map((a) => ({
          no: num(a.attempt_no),
          reference: String(a.transaction_reference),
          state: String(a.state),
          refusalCode: str(a.refusal_code),
          adviceCode: str(a.advice_code),
          decision: str(a.decision),
          decisionReason: str(a.decision_reason),
          correlationId: str(a.correlation_id),
          attemptedAt: date(a.attempted_at).toISOString(),
        })),
    })),
  };
}
