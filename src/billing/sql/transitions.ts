import { type SQL, sql } from 'drizzle-orm';
import type { Database, Executor } from '../../db/client.ts';
import {
  type ChargeState,
  chargeMachine,
  HOLDING_MANDATE_STATUSES,
  type Machine,
  type MandateStatus,
  mandateMachine,
  sourcesOf,
  states,
  UNSENT_CHARGE_STATES,
  WAITING_CHARGE_STATES,
} from '../../domain/lifecycle.ts';

/**
 * The one door of every state change. Each write of a state column builds its guard here from
 * the tables in `src/domain/lifecycle.ts` (never a hand-written list of from-states), checks the
 * fencing token where a lease is involved, and writes the audit row in the same statement or
 * transaction. A write the guard or the fence refuses changes nothing and says so in its
 * return value; it never throws through a run. The `state_transitions` trigger (migration 0002)
 * refuses anything that slips past.
 *
 * Hot-path statements (write-ahead, outcome commits) embed these guards in their own CTEs so a
 * charge still costs one statement; everything else calls `transitionCharge` /
 * `transitionMandate`.
 *
 * Lock order, to keep operator actions and runs from deadlocking: a transaction that moves a
 * mandate and some of its charges locks the mandate first (`lockMandate`), then the charges.
 * An operator's take-over locks only the waiting charges, never one in flight, whose outcome
 * commit locks its charge and then, for a dunning decision, the mandate.
 */

/**
 * State names as SQL literals, not bind parameters: they come from the tables in code, never
 * from input, and as literals the hot-path statements keep their text and parameter count
 * small and stable (a guard of six states as parameters cost six more per statement).
 */
const STATE_NAME = /^[a-z_]+$/;
const quoted = (states: readonly string[]): string =>
  states
    .map((s) => {
      if (!STATE_NAME.test(s)) throw new TypeError(`not a state name: ${JSON.stringify(s)}`);
      return `'${s}'`;
    })
    .join(', ');
const list = (states: readonly string[]): SQL => sql.raw(quoted(states));
const literal = (state: string): SQL => list([state]);

/**
 * `<column> in (every state that may become <to>)`, optionally also `to` itself (a repeat that
 * changes nothing but the reason, such as an unknown outcome asked about again).
 */
export function mayBecome<S extends string>(
  m: Machine<S>,
  column: string,
  to: S,
  opts: { orSame?: boolean } = {},
): SQL {
  // A guard is a constant of (machine, column, target): built once, not per statement (the
  // outcome commits use several per charge).
  const key = `${m.name}|${column}|${to}|${opts.orSame === true}`;
  let guard = guards.get(key);
  if (guard === undefined) {
    if (!COLUMN.test(column)) throw new TypeError(`not a column: ${JSON.stringify(column)}`);
    const from = sourcesOf(m, to);
    const allowed = opts.orSame && !from.includes(to) ? [...from, to] : from;
    guard = allowed.length === 0 ? sql.raw('false') : sql.raw(`${column} in (${quoted(allowed)})`);
    guards.set(key, guard);
  }
  return guard;
}
const guards = new Map<string, SQL>();

/** `<column> in (every state with a way out)`: a row its machine has not yet finished with. */
export function isOpen<S extends string>(m: Machine<S>, column: string): SQL {
  if (!COLUMN.test(column)) throw new TypeError(`not a column: ${JSON.stringify(column)}`);
  const open = states(m).filter((s) => m.transitions[s].length > 0);
  return open.length === 0 ? sql.raw('false') : sql.raw(`${column} in (${quoted(open)})`);
}
const COLUMN = /^([a-z_]+\.)?[a-z_]+$/;

export const chargeMayBecome = (to: ChargeState, alias = 'charges', opts: { orSame?: boolean } = {}) =>
  mayBecome(chargeMachine, `${alias}.state`, to, opts);

/**
 * For a target computed in SQL (`expr`, one of `candidates`): whether the charge row may move
 * there from its current state, by the table.
 */
export function movesTo(expr: SQL, candidates: readonly ChargeState[], alias = 'c'): SQL {
  return mayMoveTo(chargeMachine, `${alias}.state`, expr, candidates);
}

/** `movesTo` for any machine: the row in `column` may take the state `expr` computes. */
export function mayMoveTo<S extends string>(
  m: Machine<S>,
  column: string,
  expr: SQL,
  candidates: readonly S[],
): SQL {
  return sql`(${sql.join(
    candidates.map(
      (to) => sql`(${expr} = ${literal(to)} and (${mayBecome(m, column, to, { orSame: true })}))`,
    ),
    sql` or `,
  )})`;
}

export const mandateMayBecome = (to: MandateStatus, alias = 'mandates') =>
  mayBecome(mandateMachine, `${alias}.status`, to);

/** `<alias>.state in ('pending', 'retry_scheduled')`: charges not yet handed to a sender. */
export const chargeIsWaiting = (alias = 'c'): SQL =>
  sql`${sql.raw(`${alias}.state`)} in (${list(WAITING_CHARGE_STATES)})`;

/** Lock a mandate's row for the rest of the transaction: taken before any of its charges. */
export async function lockMandate(database: Database, on: Executor, mandateId: number): Promise<void> {
  await database.rows(sql`select id from mandates where id = ${mandateId} for update`, on);
}

/** `<alias>.status not in ('paused', 'cancelled')`: a mandate whose charges may be sent. */
export const mandateReleasesCharges = (alias = 'm'): SQL =>
  sql`${sql.raw(`${alias}.status`)} not in (${list(HOLDING_MANDATE_STATUSES)})`;

/**
 * The state an attempt's outcome leaves its charge in: `target`, unless that would leave the
 * charge waiting (a retry, a new card, a stop) on a mandate cancelled while the attempt was in
 * flight, which no run would ever send again: then the charge is cancelled with its mandate.
 *
 * The mandate's status is read `for share`: a cancel (an operator's, or a period end's) that
 * has locked the mandate but not yet committed is waited for and then seen. A plain read would
 * see the status before that cancel, write a retry, and the cancel, which takes over only the
 * charges waiting when it ran, would leave that retry behind on a cancelled mandate. The guard
 * is evaluated before the charge row is locked, so the lock order stays mandate, then charge.
 */
export function outcomeState(target: ChargeState, mandateId: number): SQL {
  if (!(UNSENT_CHARGE_STATES as readonly string[]).includes(target)) return sql`${target}::text`;
  return sql`(case when (select status from mandates where id = ${mandateId} for share) = 'cancelled'
    then 'cancelled' else ${target}::text end)`;
}

export interface Actor {
  actor?: 'system' | 'operator';
  runId?: number | null | undefined;
}

export interface ChargeMove extends Actor {
  id: number;
  to: ChargeState;
  reason: string;
  /** Only if the charge still carries this fencing token (the claim's); else fenced out. */
  fence?: number | undefined;
  /** Only from these states (narrower than the table): an operator asking for a specific move. */
  from?: readonly ChargeState[] | undefined;
  /** Allow a move to the state it is already in (refreshes reason and columns). */
  orSame?: boolean;
  /** Further columns to set, as `col = value` fragments. */
  set?: SQL[];
  /** Bump the fence (an operator's action outranks any lease) and clear the lease. */
  takeOver?: boolean;
  /** Clear the lease (the holder is done with the charge). */
  release?: boolean;
}

export type MoveResult =
  | { ok: true; from: string }
  | { ok: false; reason: 'fenced' | 'not_allowed' | 'missing' };

/** One charge's state change through the table, the fence and the audit trail, in one statement. */
export async function transitionCharge(
  database: Database,
  on: Executor | undefined,
  m: ChargeMove,
): Promise<MoveResult> {
  const sets: SQL[] = [
    sql`state = ${m.to}`,
    sql`state_reason = ${m.reason}`,
    sql`updated_at = now()`,
    ...(m.set ?? []),
  ];
  if (m.takeOver) sets.push(sql`fence = c.fence + 1`);
  if (m.takeOver || m.release) sets.push(sql`lease_owner = null`, sql`lease_expires_at = null`);
  const guards: SQL[] = [chargeMayBecome(m.to, 'o', { orSame: m.orSame ?? false })];
  if (m.fence !== undefined) guards.push(sql`o.fence = ${m.fence}`);
  if (m.from) guards.push(sql`o.state in (${list(m.from)})`);
  const rows = await database.rows<{ moved_from: string | null; state: string | null; fence: number | null }>(
    sql`with o as (select id, state, fence from charges where id = ${m.id} for update),
        moved as (
          update charges c set ${sql.join(sets, sql`, `)} from o
           where c.id = o.id and ${sql.join(guards, sql` and `)}
          returning c.id, o.state as from_state
        ), aud as (
          insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor, run_id)
          select 'charge', id, from_state, ${m.to}, ${m.reason}, ${m.actor ?? 'system'}, ${m.runId ?? null}::bigint from moved
        )
        select (select from_state from moved) as moved_from, (select state from o) as state, (select fence from o) as fence`,
    on,
  );
  const r = rows[0];
  if (!r || r.state === null) return { ok: false, reason: 'missing' };
  if (r.moved_from !== null) return { ok: true, from: r.moved_from };
  if (m.fence !== undefined && r.fence !== m.fence) return { ok: false, reason: 'fenced' };
  return { ok: false, reason: 'not_allowed' };
}

/**
 * Every waiting charge of a mandate moved (or merely taken over) by an operator's action: the
 * fence is bumped and the lease cleared, so a run that claimed one of them can neither write it
 * ahead nor send it. Charges already written ahead (in flight) are left alone: their outcome
 * must still be recorded.
 */
export async function takeOverWaitingCharges(
  database: Database,
  on: Executor,
  mandateId: number,
  move: { to?: ChargeState; from?: readonly ChargeState[]; reason: string; set?: SQL[] } & Actor,
): Promise<number[]> {
  const from = move.from ?? WAITING_CHARGE_STATES;
  const sets: SQL[] = [
    sql`fence = c.fence + 1`,
    sql`lease_owner = null`,
    sql`lease_expires_at = null`,
    ...(move.set ?? []),
  ];
  const guards: SQL[] = [sql`c.state in (${list(from)})`];
  if (move.to !== undefined) {
    sets.push(sql`state = ${move.to}`, sql`state_reason = ${move.reason}`, sql`updated_at = now()`);
    guards.push(chargeMayBecome(move.to, 'c'));
  }
  const rows = await database.rows<{ id: number }>(
    sql`with moved as (
          update charges c set ${sql.join(sets, sql`, `)}
            from (select id, state from charges where mandate_id = ${mandateId} and state in (${list(from)}) for update) o
           where c.id = o.id and ${sql.join(guards, sql` and `)}
          returning c.id, o.state as from_state
        ), aud as (
          insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor, run_id)
          select 'charge', id, from_state, ${move.to ?? null}::text, ${move.reason}, ${move.actor ?? 'operator'}, ${move.runId ?? null}::bigint
            from moved where ${move.to !== undefined}::boolean
        )
        select id from moved`,
    on,
  );
  return rows.map((r) => r.id);
}

export interface MandateMove extends Actor {
  id: number;
  to: MandateStatus;
  reason: string;
  /** Only from these statuses (narrower than the table). */
  from?: readonly MandateStatus[] | undefined;
  set?: SQL[];
}

/** One mandate's status change through the table and the audit trail, in one statement. */
export async function transitionMandate(
  database: Database,
  on: Executor | undefined,
  m: MandateMove,
): Promise<MoveResult> {
  const sets: SQL[] = [
    sql`status = ${m.to}`,
    sql`status_reason = ${m.reason}`,
    sql`updated_at = now()`,
    ...(m.set ?? []),
  ];
  const guards: SQL[] = [mandateMayBecome(m.to, 'o')];
  if (m.from) guards.push(sql`o.status in (${list(m.from)})`);
  const rows = await database.rows<{ moved_from: string | null; status: string | null }>(
    sql`with o as (select id, status from mandates where id = ${m.id} for update),
        moved as (
          update mandates mm set ${sql.join(sets, sql`, `)} from o
           where mm.id = o.id and ${sql.join(guards, sql` and `)}
          returning mm.id, o.status as from_status
        ), aud as (
          insert into audit_log (entity_type, entity_id, from_state, to_state, reason, actor, run_id)
          select 'mandate', id, from_status, ${m.to}, ${m.reason}, ${m.actor ?? 'system'}, ${m.runId ?? null}::bigint from moved
        )
        select (select from_status from moved) as moved_from, (select status from o) as status`,
    on,
  );
  const r = rows[0];
  if (!r || r.status === null) return { ok: false, reason: 'missing' };
  return r.moved_from !== null ? { ok: true, from: r.moved_from } : { ok: false, reason: 'not_allowed' };
}

/**
 * Clear a lease, but only the holder's: the owner and the fencing token must still be the
 * ones it claimed with, so a worker whose lease was taken over cannot clear its successor's.
 */
export async function releaseLease(
  database: Database,
  c: { chargeId: number; owner?: string; fence: number },
  reason?: string,
  on?: Executor,
): Promise<boolean> {
  const owner = c.owner === undefined ? sql`` : sql`and lease_owner = ${c.owner}`;
  const rows = await database.rows<{ id: number }>(
    sql`update charges set lease_owner = null, lease_expires_at = null,
    state_reason = coalesce(${reason ?? null}, state_reason), updated_at = now()
    where id = ${c.chargeId} and fence = ${c.fence} ${owner} returning id`,
    on,
  );
  return rows.length > 0;
}

/** Ids as one `bigint[]` parameter's literal (`'{1,2,3}'`): one text whatever their number. */
const bigintArray = (ids: Iterable<number>): string => `{${[...ids].join(',')}}`;

/**
 * Release the credentials a run leased with its claims (sql/claim-due.ts), those it still holds:
 * in chunks, each taking its rows in id order as the other writers of credentials do.
 */
export async function releaseCredentials(
  database: Database,
  holder: string,
  credentials: ReadonlySet<number>,
): Promise<number> {
  const ids = [...credentials].sort((a, b) => a - b);
  let released = 0;
  for (let i = 0; i < ids.length; i += 10_000) {
    const rows = await database.rows<{ id: number }>(
      sql`update credentials set lease_owner = null, lease_expires_at = null
       where id in (select id from credentials where id = any(${bigintArray(ids.slice(i, i + 10_000))}::bigint[])
                       and lease_owner = ${holder} order by id for no key update)
       returning id`,
    );
    released += rows.length;
  }
  return released;
}

/** Release many leases a run still holds (owner and fence checked per charge), in one statement. */
export async function releaseLeases(
  database: Database,
  owner: string,
  held: ReadonlyMap<number, number>,
): Promise<number> {
  if (held.size === 0) return 0;
  const rows = await database.rows<{
    id: number;
  }>(sql`update charges c set lease_owner = null, lease_expires_at = null
      from (select unnest(${bigintArray(held.keys())}::bigint[]) as id,
                   unnest(${bigintArray(held.values())}::bigint[]) as fence) h
     where c.id = h.id and c.fence = h.fence and c.lease_owner = ${owner} returning c.id`);
  return rows.length;
}

/**
 * Extend a lease the caller still holds (owner and fence), from now. Returns the new wall-clock
 * deadline, or null when the lease was taken over meanwhile.
 */
export async function renewLease(
  database: Database,
  c: {
    chargeId: number;
    credentialId: number;
    owner: string;
    /** Who holds the credential (the run: `RunTally.holder`). */
    holder: string;
    fence: number;
    leaseSeconds: number;
  },
): Promise<number | null> {
  const deadline = Date.now() + c.leaseSeconds * 1000;
  // The credential's lease with it (taken with the claim, see sql/claim-due.ts): a charge whose
  // credential another run took meanwhile is not renewed either, so it is not sent.
  const rows = await database.rows<{
    id: number;
  }>(sql`with cr as (
      update credentials set lease_expires_at = now() + make_interval(secs => ${c.leaseSeconds})
       where id = ${c.credentialId} and lease_owner = ${c.holder} returning id)
    update charges set lease_expires_at = now() + make_interval(secs => ${c.leaseSeconds})
    where id = ${c.chargeId} and fence = ${c.fence} and lease_owner = ${c.owner} and exists (select 1 from cr)
    returning id`);
  return rows.length > 0 ? deadline : null;
}

/** A mandate's next cycle as a materialization leaves it (its status: active, completed or cancelled). */
export interface MandateAdvance {
  id: number;
  next_cycle: number;
  next_due_at: string | null;
  status: MandateStatus;
  credit_balance: number;
}

/**
 * Many mandates' next cycles, credits and statuses in one statement (a materialization batch),
 * each status change where the mandate table allows it. The caller audits the mandates it ended.
 * Bound as JSON (why: src/billing/sql/authorized-outcomes.ts).
 */
export async function advanceMandates(
  database: Database,
  on: Executor,
  rows: MandateAdvance[],
): Promise<void> {
  await database.rows(
    sql`update mandates m set next_cycle = v.next_cycle, next_due_at = v.next_due_at,
             status = v.status, credit_balance = v.credit_balance, updated_at = now()
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as v(id bigint, next_cycle int,
             next_due_at timestamptz, status text, credit_balance bigint)
       where m.id = v.id and ${mayMoveTo(mandateMachine, 'm.status', sql`v.status`, ['active', 'completed', 'cancelled'])}`,
    on,
    { prepare: true },
  );
}

export { writeAudit } from './audit.ts';
