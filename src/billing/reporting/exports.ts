import { type SQL, sql } from 'drizzle-orm';
import type { Database } from '../../db/client.ts';
import { ValidationError } from '../../errors.ts';
import { sequenceEvents } from '../../events/sequence.ts';
import { csvLine } from './csv.ts';

/**
 * Data out, in files: charges, mandates, attempts or events in a window, as CSV or NDJSON,
 * streamed a page of rows at a time (keyset on id), so a million rows take the memory of one
 * page. Column sets are fixed and documented (README); no card data is among them: a mandate's
 * card appears as brand and last four at most.
 */
export const EXPORT_KINDS = ['charges', 'mandates', 'attempts', 'events', 'paypal'] as const;
export type ExportKind = (typeof EXPORT_KINDS)[number];
export type ExportFormat = 'csv' | 'ndjson';

const iso = (column: string) => sql.raw(`rebill_iso(${column})`);

/** Per kind: its columns (in order), the instant its window is on, and its query. */
const KINDS: Record<
  ExportKind,
  {
    columns: string[];
    select: (where: SQL, after: number, limit: number) => SQL;
    /** NDJSON: columns the API gives in another JSON type than the row's (a string id, a JSON document). */
    ndjson?: Record<string, 'string' | 'json'>;
  }
> = {
  charges: {
    columns: [
      'id',
      'mandate_id',
      'cycle',
      'kind',
      'amount',
      'credit_applied',
      'currency',
      'state',
      'state_reason',
      'due_at',
      'attempt_count',
      'settled_amount',
      'refunded_amount',
      'updated_at',
    ],
    select: (
      where,
      after,
      limit,
    ) => sql`select c.id, c.mandate_id, c.cycle, c.kind, c.amount, c.credit_applied, c.currency,
        c.state, c.state_reason, ${iso('c.due_at')} as due_at, c.attempt_count, c.settled_amount, c.refunded_amount,
        ${iso('c.updated_at')} as updated_at
      from charges c where c.id > ${after} and ${where} order by c.id limit ${limit}`,
  },
  mandates: {
    columns: [
      'id',
      'customer_ref',
      'intent',
      'amount',
      'currency',
      'interval',
      'status',
      'status_reason',
      'next_due_at',
      'credit_balance',
      'gateway',
      'card_brand',
      'card_last_four',
      'legacy_id',
      'created_at',
    ],
    select: (where, after, limit) => sql`select m.id, cu.ref as customer_ref, m.intent, m.amount, m.currency,
        case when m.interval_unit is null then null else m.interval_count || ' ' || m.interval_unit end as interval,
        m.status, m.status_reason, ${iso('m.next_due_at')} as next_due_at, m.credit_balance, m.gateway,
        cr.brand as card_brand, cr.last_four as card_last_four, m.legacy_id, ${iso('m.created_at')} as created_at
      from mandates m join customers cu on cu.id = m.customer_id join credentials cr on cr.id = m.credential_id
      where m.id > ${after} and ${where} order by m.id limit ${limit}`,
  },
  attempts: {
    columns: [
      'id',
      'charge_id',
      'attempt_no',
      'transaction_reference',
      'kind',
      'state',
      'refusal_code',
      'refusal_description',
      'advice_code',
      'decision',
      'decision_reason',
      'http_status',
      'latency_ms',
      'attempted_at',
    ],
    select: (
      where,
      after,
      limit,
    ) => sql`select a.id, a.charge_id, a.attempt_no, a.transaction_reference, a.kind, a.state,
        a.refusal_code, a.refusal_description, a.advice_code, a.decision, a.decision_reason, a.http_status, a.latency_ms,
        ${iso('a.attempted_at')} as attempted_at
      from attempts a where a.id > ${after} and ${where} order by a.id limit ${limit}`,
  },
  events: {
    columns: ['id', 'type', 'created_at', 'mandate_id', 'customer_ref', 'data'],
    // as GET /v1/events: the id is the cursor, a string
    ndjson: { id: 'string', data: 'json' },
    select: (
      where,
      after,
      limit,
    ) => sql`select e.id, e.type, ${iso('e.created_at')} as created_at, e.mandate_id,
        e.customer_ref, e.data::text as data
      from events e where e.id is not null and e.id > ${after} and ${where} order by e.id limit ${limit}`,
  },
  /** PayPal payments, apart from card charges: refunds summed as accepted and in doubt. */
  paypal: {
    columns: [
      'id',
      'customer_ref',
      'mandate_id',
      'transaction_reference',
      'amount',
      'currency',
      'last_event',
      'refunded_amount',
      'pending_amount',
      'refunds',
      'checked_at',
      'created_at',
    ],
    select: (where, after, limit) => sql`select p.id, p.customer_ref, p.mandate_id, p.transaction_reference,
        p.amount, p.currency, p.last_event,
        coalesce((select sum(r.amount) from paypal_refunds r where r.payment_id = p.id and r.state = 'accepted'), 0)::bigint as refunded_amount,
        coalesce((select sum(r.amount) from paypal_refunds r where r.payment_id = p.id and r.state = 'requested'), 0)::bigint as pending_amount,
        (select count(*) from paypal_refunds r where r.payment_id = p.id)::int as refunds,
        ${iso('p.checked_at')} as checked_at, ${iso('p.created_at')} as created_at
      from paypal_payments p where p.id > ${after} and ${where} order by p.id limit ${limit}`,
  },
};

const WINDOW: Record<ExportKind, string> = {
  charges: 'c.due_at',
  mandates: 'm.created_at',
  attempts: 'a.attempted_at',
  events: 'e.created_at',
  paypal: 'p.created_at',
};

/** The table each window column belongs to, under the same alias. */
const TABLE: Record<ExportKind, string> = {
  charges: 'charges c',
  mandates: 'mandates m',
  attempts: 'attempts a',
  events: 'events e',
  paypal: 'paypal_payments p',
};

export function exportColumns(kind: ExportKind): string[] {
  return KINDS[kind].columns;
}

const PAGE = 1000;

function exportWindow(kind: string, f: { from: Date; to: Date }) {
  if (!(EXPORT_KINDS as readonly string[]).includes(kind))
    throw new ValidationError('kind', `must be one of ${EXPORT_KINDS.join(', ')}`);
  if (f.to.getTime() <= f.from.getTime()) throw new ValidationError('to', 'must be after from');
  const k = KINDS[kind as ExportKind];
  const column = sql.raw(WINDOW[kind as ExportKind]);
  return {
    k,
    table: sql.raw(TABLE[kind as ExportKind]),
    where: sql`${column} >= ${f.from.toISOString()}::timestamptz and ${column} < ${f.to.toISOString()}::timestamptz`,
  };
}

/** How many rows an export of this window holds (its progress bar's total). */
export async function exportCount(
  database: Database,
  kind: string,
  f: { from: Date; to: Date },
): Promise<number> {
  const { table, where } = exportWindow(kind, f);
  const rows = await database.rows<{ n: number }>(
    sql`select count(*)::int as n from ${table} where ${where}`,
  );
  return rows[0]?.n ?? 0;
}

/** The export's lines (a header first for CSV), streamed. */
export async function* exportLines(
  database: Database,
  kind: string,
  f: {
    from: Date;
    to: Date;
    format?: string | undefined;
    /** Called after each page with the rows written so far (a progress bar). */
    onRows?: ((rows: number) => void) | undefined;
  },
): AsyncGenerator<string> {
  const format = f.format ?? 'csv';
  if (format !== 'csv' && format !== 'ndjson') throw new ValidationError('format', 'must be csv or ndjson');
  const { k, where } = exportWindow(kind, f);
  // Events are numbered in commit order first, so an export shows everything committed.
  if (kind === 'events') await sequenceEvents(database);
  // The CSV header goes out with the first page, never before it: the API sends its 200 with
  // the first chunk, so a database that cannot be read is a 503, not a header-only file.
  let out = format === 'csv' ? `${k.columns.join(',')}\n` : '';
  let after = 0;
  let written = 0;
  for (;;) {
    const rows = await database.rows<ExportRow>(k.select(where, after, PAGE));
    for (const r of rows) {
      if (format === 'ndjson') {
        const o: Record<string, unknown> = {};
        for (const c of k.columns) {
          const v = r[c] ?? null;
          const as = v === null ? undefined : k.ndjson?.[c];
          o[c] = as === 'json' ? JSON.parse(String(v)) : as === 'string' ? String(v) : v;
        }
        out += `${JSON.stringify(o)}\n`;
      } else out += csvLine(k.columns.map((c) => r[c]));
    }
    written += rows.length;
    if (out) yield out;
    out = '';
    f.onRows?.(written);
    if (rows.length < PAGE) return;
    after = rows[rows.length - 1]!.id;
  }
}

/** A row of an export: its columns, times already ISO text (`iso`), event data as JSON text. */
type ExportRow = { id: number } & Record<string, string | number | null>;
