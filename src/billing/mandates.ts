import { createHash } from 'node:crypto';
import { type SQL, sql } from 'drizzle-orm';
import { z } from 'zod';
import type { Database, Tx } from '../db/client.ts';
import { date, dateOrNull, num, numOrNull, str } from '../db/values.ts';
import {
  cycleAtOrAfter,
  dueAt,
  firstCycleAt,
  isTimeZone,
  lastCycleDueBy,
  parseInterval,
  type Schedule,
} from '../domain/calendar.ts';
import { parseInstant } from '../domain/instant.ts';
import {
  type ChargeState,
  canMove,
  type MandateStatus,
  mandateMachine,
  UNSENT_CHARGE_STATES,
} from '../domain/lifecycle.ts';
import { assertMoney, splitInstalments } from '../domain/money.ts';
import { ConflictError, NotFoundError, RebillError, ValidationError } from '../errors.ts';
import { cardBrand, luhnValid } from '../legacy/card.ts';
import { encryptSecret, fingerprint } from '../legacy/crypto.ts';
import type { BillingContext } from './context.ts';
import { takeOverWaitingCharges, transitionMandate } from './door.ts';
import { queueCharge as queue, scheduleOf } from './materialize.ts';

const entityPattern = /^[A-Za-z0-9][A-Za-z0-9 ]{0,31}$/;

const expiry = {
  expiryMonth: z.number().int().min(1).max(12),
  expiryYear: z.number().int().min(2000).max(2100),
};

/** How a mandate is charged: a recurring link from a verification, or data for migrateRecurring / Liquido. */
export const credentialInputSchema = z.union([
  z.object({ link: z.string().url() }).strict(),
  z
    .object({
      cardNumber: z.string().regex(/^\d{12,19}$/, 'must be 12-19 digits'),
      ...expiry,
      cardHolderName: z.string().max(255).optional(),
    })
    .strict(),
  z.object({ tokenHref: z.string().url() }).strict(),
  z
    .object({
      dpan: z.string().regex(/^\d{12,19}$/, 'must be 12-19 digits'),
      ...expiry,
      cardHolderName: z.string().max(255).optional(),
    })
    .strict(),
  z.object({ liquidoCardId: z.string().min(1).max(128) }).strict(),
]);
export type CredentialInput = z.infer<typeof credentialInputSchema>;

/**
 * An instant: an ISO-8601 string (all JSON can carry), or a Date from in-process callers. Never
 * null, a number or a boolean: coercing those made 1970-01-01 of `start: null`.
 */
const instantInput = z.union([z.string(), z.date()], {
  message: 'must be an ISO-8601 date or date-time string',
});

/** An instant input read in the mandate's zone, within the sane range. */
function instantOf(field: string, v: string | Date, zone: string): Date {
  return parseInstant(field, typeof v === 'string' ? v : v.toISOString(), zone);
}

export const createMandateSchema = z
  .object({
    customerRef: z.string().min(1).max(128),
    intent: z.enum(['subscription', 'instalment', 'unscheduled']),
    /** Per cycle; for instalment plans, or give totalAmount instead. */
    amount: z.number().int().positive().optional(),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code'),
    entity: z.string().regex(entityPattern, 'must be 1-32 letters, digits or spaces').optional(),
    narrative: z.string().min(1).max(24),
    interval: z.string().optional(),
    /** ISO-8601; without an offset, wall-clock time in `timezone` (domain/instant.ts). */
    start: instantInput.optional(),
    timezone: z.string().default('UTC'),
    localTime: z.string().optional(),
    trialEnd: instantInput.optional(),
    end: instantInput.optional(),
    /** A start in the past charges every cycle since (else only the latest one due). */
    backfill: z.boolean().optional(),
    instalments: z.number().int().min(1).max(1000).optional(),
    /** Instalment plans: a total to split into N instalments, the last carrying the remainder. */
    totalAmount: z.number().int().positive().optional(),
    gateway: z.enum(['worldpay', 'liquido']).default('worldpay'),
    settleMode: z.enum(['full', 'partial', 'none']).default('full'),
    settlePercent: z.number().int().min(1).max(100).optional(),
    credential: credentialInputSchema,
  })
  .strict();
export type CreateMandateInput = z.input<typeof createMandateSchema>;

/** Turn a zod failure into our ValidationError naming the first bad field. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ValidationError(issue.path.join('.') || 'body', issue.message);
  }
  return r.data;
}

function audit(
  tx: Tx,
  type: string,
  id: number,
  from: string | null,
  to: string,
  reason: string,
  actor = 'operator',
) {
  return tx.execute(sql`insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor)
    values (${type}, ${id}, ${from}, ${to}, ${reason}, ${actor})`);
}

/** Create (or find) the credential for a customer; one per card/link, shared by its mandates. */
async function upsertCredential(
  ctx: BillingContext,
  tx: Tx,
  customerId: number,
  gateway: string,
  c: CredentialInput,
): Promise<number> {
  const key = ctx.config.encryptionKey;
  const hash = (v: string) => createHash('sha256').update(v).digest('hex');
  let cols: Record<string, unknown>;
  let fp: string;
  let linkHref: string | null = null;
  if ('link' in c) {
    cols = { instrument_type: 'link' };
    fp = `link:${hash(c.link)}`;
    linkHref = c.link;
  } else if ('tokenHref' in c) {
    cols = { instrument_type: 'card/token', token_href: c.tokenHref };
    fp = `token:${hash(c.tokenHref)}`;
  } else if ('liquidoCardId' in c) {
    cols = { instrument_type: 'liquido/cardId', vaulted_card_id: c.liquidoCardId };
    fp = `liquido:${hash(c.liquidoCardId)}`;
  } else {
    const pan = 'cardNumber' in c ? c.cardNumber : c.dpan;
    const field = 'cardNumber' in c ? 'credential.cardNumber' : 'credential.dpan';
    if (!luhnValid(pan)) throw new ValidationError(field, 'fails the Luhn check');
    if (!key)
      throw new ValidationError(field, 'REBILL_ENCRYPTION_KEY is not set: card data cannot be stored');
    cols = {
      instrument_type: 'cardNumber' in c ? 'card/plain' : 'card/networkToken+applepay',
      encrypted_pan: encryptSecret(pan, key),
      brand: cardBrand(pan),
      bin: pan.slice(0, 6),
      last_four: pan.slice(-4),
      expiry_month: c.expiryMonth,
      expiry_year: c.expiryYear,
      card_holder_name: c.cardHolderName ?? null,
    };
    fp = `pan:${fingerprint(pan, key)}`;
  }
  const existing = await ctx.database.rows(
    sql`select id, status from credentials where customer_id = ${customerId} and fingerprint = ${fp}`,
    tx,
  );
  if (existing[0]) {
    const id = num(existing[0].id);
    if (existing[0].status !== 'active') {
      throw new ConflictError(
        `credential ${id} for this card is ${String(existing[0].status)}; attach a new card instead`,
      );
    }
    return id;
  }
  const names = Object.keys(cols);
  const rows = await ctx.database.rows(
    sql`insert into credentials (customer_id, gateway, fingerprint, ${sql.raw(names.join(', '))})
        values (${customerId}, ${gateway}, ${fp}, ${sql.join(
          names.map((n) => sql`${cols[n] ?? null}`),
          sql`, `,
        )}) returning id`,
    tx,
  );
  const id = num(rows[0]?.id);
  if (linkHref) {
    const link = await ctx.database.rows(
      sql`insert into links (credential_id, source, rel, href) values (${id}, 'verification', 'payments:recurringAuthorize', ${linkHref}) returning id`,
      tx,
    );
    await tx.execute(sql`update credentials set current_link_id = ${num(link[0]?.id)} where id = ${id}`);
  }
  await audit(tx, 'credential', id, null, 'active', `created (${String(cols.instrument_type)})`);
  return id;
}

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

function toView(r: Record<string, unknown>): MandateView {
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

const viewSelect = sql`select m.*, cu.ref as customer_ref, cr.instrument_type, cr.status as credential_status, cr.brand,
  cr.last_four, cr.expiry_month, cr.expiry_year, (cr.encrypted_pan is not null) as holds_card_data, l.href as current_link
  from mandates m join customers cu on cu.id = m.customer_id join credentials cr on cr.id = m.credential_id
  left join links l on l.id = cr.current_link_id`;

export async function getMandate(database: Database, id: number): Promise<MandateView> {
  const rows = await database.rows(sql`${viewSelect} where m.id = ${id}`);
  if (!rows[0]) throw new NotFoundError('mandate', id);
  return toView(rows[0]);
}

export async function createMandate(ctx: BillingContext, raw: unknown): Promise<MandateView> {
  const input = parseInput(createMandateSchema, raw);
  const now = ctx.clock.now();
  if (input.amount === undefined && input.totalAmount === undefined)
    throw new ValidationError('amount', 'is required (or totalAmount for an instalment plan)');
  assertMoney(
    input.totalAmount ?? input.amount ?? 0,
    input.currency,
    input.totalAmount ? 'totalAmount' : 'amount',
  );
  if (!isTimeZone(input.timezone)) throw new ValidationError('timezone', 'is not a known IANA time zone');
  const interval = input.interval ? parseInterval(input.interval) : null;
  if (input.intent === 'unscheduled' && interval)
    throw new ValidationError('interval', 'unscheduled mandates have no interval');
  if (input.intent !== 'unscheduled' && !interval)
    throw new ValidationError('interval', `is required for ${input.intent} mandates`);
  if (input.intent === 'instalment' && !input.instalments)
    throw new ValidationError('instalments', 'is required for instalment mandates');
  if (input.intent !== 'instalment' && input.instalments)
    throw new ValidationError('instalments', 'only instalment mandates have a count');
  if (input.settleMode === 'partial' && !input.settlePercent)
    throw new ValidationError('settlePercent', 'is required when settleMode is partial');
  if (input.settleMode !== 'partial' && input.settlePercent !== undefined)
    throw new ValidationError('settlePercent', 'only with settleMode partial');
  if (input.gateway === 'liquido' && !('liquidoCardId' in input.credential)) {
    throw new ValidationError('credential', 'a Liquido mandate needs liquidoCardId');
  }
  if (input.gateway === 'worldpay' && 'liquidoCardId' in input.credential) {
    throw new ValidationError('credential', 'liquidoCardId is for Liquido mandates');
  }
  assertCredentialUsable(ctx, input.credential, now);
  let amount = input.amount ?? 0;
  let lastInstalmentAmount: number | null = null;
  if (input.totalAmount !== undefined) {
    if (input.intent !== 'instalment' || !input.instalments)
      throw new ValidationError('totalAmount', 'only for instalment plans');
    const split = splitInstalments(input.totalAmount, input.instalments);
    if (input.amount !== undefined && input.amount !== split.amount)
      throw new ValidationError(
        'amount',
        `contradicts totalAmount: ${input.instalments} instalments of ${input.totalAmount} are ${split.amount} each${split.lastAmount === split.amount ? '' : ` (the last ${split.lastAmount})`}; give one or the other`,
      );
    amount = split.amount;
    lastInstalmentAmount = split.lastAmount === split.amount ? null : split.lastAmount;
  }
  const startAt = input.start === undefined ? now : instantOf('start', input.start, input.timezone);
  const trialEndAt =
    input.trialEnd === undefined ? null : instantOf('trialEnd', input.trialEnd, input.timezone);
  const endAt = input.end === undefined ? null : instantOf('end', input.end, input.timezone);
  const anchorAt = firstCycleAt({
    startAt,
    trialEndAt,
    timezone: input.timezone,
    ...(input.localTime ? { localTime: input.localTime } : {}),
  });
  if (endAt && endAt <= anchorAt) throw new ValidationError('end', 'is before the first charge');
  const start = startCycle(
    {
      intervalUnit: interval?.unit ?? null,
      intervalCount: interval?.count ?? null,
      timezone: input.timezone,
      anchorAt,
      anchorCycle: 0,
      endAt,
      instalmentsTotal: input.instalments ?? null,
    },
    { now, backfill: input.backfill ?? false, intent: input.intent },
  );
  const entity = input.entity ?? ctx.config.worldpay.entity;
  const id = await ctx.database.db.transaction(async (tx) => {
    const cu = await ctx.database.rows(
      sql`insert into customers (ref) values (${input.customerRef}) on conflict (ref) do update set ref = excluded.ref returning id`,
      tx,
    );
    const customerId = num(cu[0]?.id);
    const credentialId = await upsertCredential(ctx, tx, customerId, input.gateway, input.credential);
    const rows = await ctx.database.rows(
      sql`insert into mandates (customer_id, credential_id, gateway, intent, amount, currency, entity, narrative,
            interval_unit, interval_count, timezone, anchor_at, start_at, end_at, trial_end_at, instalments_total,
            last_instalment_amount, next_cycle, next_due_at, backfill_through_cycle, settle_mode, settle_percent)
          values (${customerId}, ${credentialId}, ${input.gateway}, ${input.intent}, ${amount}, ${input.currency}, ${entity},
            ${input.narrative}, ${interval?.unit ?? null}, ${interval?.count ?? null}, ${input.timezone},
            ${anchorAt.toISOString()}::timestamptz, ${startAt.toISOString()}::timestamptz, ${endAt?.toISOString() ?? null}::timestamptz,
            ${trialEndAt?.toISOString() ?? null}::timestamptz, ${input.instalments ?? null}, ${lastInstalmentAmount},
            ${start.cycle}, ${interval ? start.dueAt.toISOString() : null}::timestamptz, ${start.backfillThrough},
            ${input.settleMode}, ${input.settlePercent ?? null})
          returning id`,
      tx,
    );
    const mandateId = num(rows[0]?.id);
    await audit(
      tx,
      'mandate',
      mandateId,
      null,
      'active',
      start.skipped > 0
        ? `created; started in the past: ${start.skipped} earlier cycle(s) not charged (no backfill)`
        : 'created',
    );
    return mandateId;
  });
  return getMandate(ctx.database, id);
}

/**
 * Where a new mandate's billing starts. A start in the past charges only the latest cycle due
 * now, never the ones before it, unless backfill is asked for; then every cycle since the start
 * is due, and the catch-up bound does not apply to them. An instalment plan would lose its
 * skipped instalments, so a backdated plan without backfill is refused instead.
 */
function startCycle(
  m: Parameters<typeof scheduleOf>[0],
  opts: { now: Date; backfill: boolean; intent: string },
): { cycle: number; dueAt: Date; backfillThrough: number | null; skipped: number } {
  const schedule = scheduleOf(m);
  if (!schedule.interval) return { cycle: 0, dueAt: m.anchorAt, backfillThrough: null, skipped: 0 };
  const last = lastCycleDueBy(schedule, opts.now, 0);
  if (last === null || last === 0) return { cycle: 0, dueAt: m.anchorAt, backfillThrough: null, skipped: 0 };
  if (opts.backfill) return { cycle: 0, dueAt: m.anchorAt, backfillThrough: last, skipped: 0 };
  if (opts.intent === 'instalment')
    throw new ValidationError(
      'start',
      `is ${last} instalment(s) in the past: they would be skipped; pass backfill to charge them, or start the plan now`,
    );
  return { cycle: last, dueAt: dueAt(schedule, last), backfillThrough: null, skipped: last };
}

/**
 * What can be checked of a credential before anything is stored: a link or token must point at
 * the configured Worldpay (the client would refuse to send our credentials anywhere else), and
 * a card must not have expired.
 */
function assertCredentialUsable(ctx: BillingContext, c: CredentialInput, now: Date): void {
  const base = new URL(ctx.config.worldpay.url);
  const basePath = base.pathname.replace(/\/$/, '');
  const sameOrigin = (field: string, href: string, path: string | null) => {
    let u: URL;
    try {
      u = new URL(href);
    } catch {
      throw new ValidationError(field, 'must be an absolute URL');
    }
    if (u.origin !== base.origin)
      throw new ValidationError(field, `must be a link on the configured Worldpay origin ${base.origin}`);
    if (
      path !== null &&
      (!u.pathname.startsWith(basePath + path) || u.pathname.length <= (basePath + path).length)
    )
      throw new ValidationError(field, `must be a recurring authorization link (${basePath}${path}...)`);
  };
  if ('link' in c) sameOrigin('credential.link', c.link, '/payments/authorizations/recurring/');
  if ('tokenHref' in c) sameOrigin('credential.tokenHref', c.tokenHref, null);
  if ('expiryYear' in c) {
    const thisMonth = now.getUTCFullYear() * 12 + now.getUTCMonth();
    if (c.expiryYear * 12 + (c.expiryMonth - 1) < thisMonth)
      throw new ValidationError(
        'credential.expiryYear',
        `the card expired at the end of ${String(c.expiryMonth).padStart(2, '0')}/${c.expiryYear}`,
      );
  }
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

/**
 * An operator's change of a mandate's status, through the door: the table decides whether the
 * move is allowed, and every charge still waiting to be sent is taken over (its fence bumped,
 * its lease cleared) in the same transaction, so a run that claimed one cannot write it ahead
 * or send it afterwards. `charges` may also move those charges (cancel ends them).
 */
async function setStatus(
  ctx: BillingContext,
  id: number,
  to: MandateStatus,
  reason: string,
  extra: (tx: Tx, m: MandateView) => Promise<void> = async () => {},
  charges: { to?: ChargeState; from?: readonly ChargeState[] } = {},
): Promise<MandateView> {
  const m = await getMandate(ctx.database, id);
  if (m.status === to) return m;
  if (!canMove(mandateMachine, m.status as MandateStatus, to)) {
    throw new ConflictError(`mandate ${id} is ${m.status} and cannot become ${to}`);
  }
  await ctx.database.db.transaction(async (tx) => {
    const moved = await transitionMandate(ctx.database, tx, {
      id,
      to,
      from: [m.status as MandateStatus],
      reason,
      actor: 'operator',
    });
    if (!moved.ok) throw new ConflictError(`mandate ${id} changed meanwhile; try again`);
    await takeOverWaitingCharges(ctx.database, tx, id, { ...charges, reason, actor: 'operator' });
    await extra(tx, m);
  });
  return getMandate(ctx.database, id);
}

export function pauseMandate(
  ctx: BillingContext,
  id: number,
  reason = 'paused by operator',
): Promise<MandateView> {
  return setStatus(ctx, id, 'paused', reason);
}

/**
 * Resume: cycles that fell due while paused are skipped, not charged; billing continues with
 * the first cycle due from now on.
 */
export function resumeMandate(ctx: BillingContext, id: number): Promise<MandateView> {
  return setStatus(ctx, id, 'active', 'resumed by operator', async (tx, m) => {
    await reschedule(ctx, tx, m);
  });
}

async function reschedule(ctx: BillingContext, tx: Tx, m: MandateView): Promise<void> {
  if (!m.interval || m.nextDueAt === null) return;
  const rows = await ctx.database.rows(
    sql`select interval_unit, interval_count, timezone, anchor_at, anchor_cycle, end_at, instalments_total
          from mandates where id = ${m.id}`,
    tx,
  );
  const r = rows[0]!;
  const schedule: Schedule = scheduleOf({
    intervalUnit: str(r.interval_unit),
    intervalCount: numOrNull(r.interval_count),
    timezone: String(r.timezone),
    anchorAt: date(r.anchor_at),
    anchorCycle: num(r.anchor_cycle),
    endAt: dateOrNull(r.end_at),
    instalmentsTotal: numOrNull(r.instalments_total),
  });
  const now = ctx.clock.now();
  if (new Date(m.nextDueAt) >= now) return;
  const cycle = m.intent === 'instalment' ? m.nextCycle : cycleAtOrAfter(schedule, now, m.nextCycle);
  if (cycle === null) {
    await transitionMandate(ctx.database, tx, {
      id: m.id,
      to: 'completed',
      reason: 'schedule ended while paused',
      actor: 'operator',
      set: [sql`next_due_at = null`],
    });
    return;
  }
  // Instalment plans keep every instalment: the missed ones become due now, in order.
  const next = m.intent === 'instalment' ? new Date(m.nextDueAt) : dueAt(schedule, cycle);
  await tx.execute(
    sql`update mandates set next_cycle = ${cycle}, next_due_at = ${next.toISOString()}::timestamptz where id = ${m.id}`,
  );
}

/** Cancel now (open charges are cancelled too) or at the end of the current period. */
export async function cancelMandate(
  ctx: BillingContext,
  id: number,
  opts: { atPeriodEnd?: boolean; reason?: string } = {},
): Promise<MandateView> {
  if (opts.atPeriodEnd) {
    const m = await getMandate(ctx.database, id);
    if (m.status === 'cancelled' || m.status === 'completed')
      throw new ConflictError(`mandate ${id} is ${m.status}`);
    await ctx.database.db.transaction(async (tx) => {
      await tx.execute(
        sql`update mandates set cancel_at_period_end = true, updated_at = now() where id = ${id}`,
      );
      await audit(tx, 'mandate', id, m.status, m.status, 'cancel at period end requested');
    });
    return getMandate(ctx.database, id);
  }
  return setStatus(
    ctx,
    id,
    'cancelled',
    opts.reason ?? 'cancelled by operator',
    async (tx) => {
      await tx.execute(sql`update mandates set next_due_at = null where id = ${id}`);
    },
    { to: 'cancelled', from: UNSENT_CHARGE_STATES },
  );
}

/**
 * New card details for a mandate (after a refusal asked for them, or any time): a new
 * credential, the mandate moved onto it and active again, and its charges waiting for a
 * credential or stopped scheduled for a retry now.
 */
export async function attachCredential(ctx: BillingContext, id: number, raw: unknown): Promise<MandateView> {
  const credential = parseInput(credentialInputSchema, raw);
  assertCredentialUsable(ctx, credential, ctx.clock.now());
  const m = await getMandate(ctx.database, id);
  if (m.status === 'cancelled' || m.status === 'completed')
    throw new ConflictError(`mandate ${id} is ${m.status}`);
  const now = ctx.clock.now();
  await ctx.database.db.transaction(async (tx) => {
    const cu = await ctx.database.rows(sql`select customer_id from mandates where id = ${id}`, tx);
    const credentialId = await upsertCredential(ctx, tx, num(cu[0]?.customer_id), m.gateway, credential);
    if (credentialId === m.credential.id)
      throw new ConflictError('that is the credential the mandate already uses');
    const reason = `credential ${credentialId} attached`;
    await tx.execute(
      sql`update mandates set credential_id = ${credentialId}, updated_at = now() where id = ${id}`,
    );
    if (m.status !== 'active' && m.status !== 'paused') {
      await transitionMandate(ctx.database, tx, { id, to: 'active', reason, actor: 'operator' });
    } else {
      await audit(tx, 'mandate', id, m.status, m.status, reason);
    }
    // Charges claimed on the old card are taken back; those waiting for a card retry now.
    await takeOverWaitingCharges(ctx.database, tx, id, { reason, actor: 'operator' });
    await takeOverWaitingCharges(ctx.database, tx, id, {
      from: ['needs_new_credential', 'stopped'],
      to: 'retry_scheduled',
      reason: 'new credential attached',
      actor: 'operator',
      set: [sql`next_attempt_at = ${now.toISOString()}::timestamptz`],
    });
    if (m.status === 'needs_new_credential' || m.status === 'stopped') await reschedule(ctx, tx, m);
  });
  return getMandate(ctx.database, id);
}

/** Queue a charge on an unscheduled mandate, due at once. */
export async function queueCharge(
  ctx: BillingContext,
  id: number,
  opts: { amount?: number | undefined } = {},
): Promise<{ chargeId: number; cycle: number }> {
  const m = await getMandate(ctx.database, id);
  if (m.intent !== 'unscheduled')
    throw new ConflictError(`mandate ${id} is ${m.intent}; only unscheduled mandates take queued charges`);
  if (m.status !== 'active') throw new ConflictError(`mandate ${id} is ${m.status}`);
  if (opts.amount !== undefined) assertMoney(opts.amount, m.currency, 'amount');
  const out = await queue(ctx.database, id, { amount: opts.amount, dueAt: ctx.clock.now() });
  if (out.chargeId === 0) throw new RebillError(`mandate ${id} could not take a charge`, 'conflict');
  return out;
}
