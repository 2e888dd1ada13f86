/**
 * Mandates held (paused or cancelled) as this process has heard of them: what a sender consults
 * in memory right before each POST, so a cancel or pause answered by the API, in this process or
 * any other, wins over an attempt that was written ahead and queued before it.
 *
 * Two checks make the bound (docs/operations.md, "A cancel or pause wins at the POST"):
 *  - the launch (`launchAttempts`, sql/write-ahead.ts), committed right before each POST, reads
 *    the mandate's status: a hold committed before that statement began stops the attempt there;
 *  - a hold committed after it is announced by the database at its commit (migration 0013's
 *    trigger notifies `rebill_mandate_status`) and lands in this set, which the sender reads
 *    synchronously just before the request leaves.
 * A hold made by this process is noted here at once (`noteHold`), before its caller answers.
 * A listening connection that drops is listened on again by the driver; what it missed in the
 * meantime was committed either before a launch (which read it) or while nothing was being sent
 * on the strength of this set alone, so the set needs no re-read.
 */
import type { Database } from '../../db/client.ts';
import { HOLDING_MANDATE_STATUSES } from '../../domain/lifecycle.ts';

export const MANDATE_STATUS_CHANNEL = 'rebill_mandate_status';

/**
 * An entry is needed only between a launch's read of the mandate and its POST: milliseconds.
 * Entries are dropped long after that, so a daemon's set stays small.
 */
const KEEP_MS = 10 * 60_000;

export interface MandateHolds {
  /** The hold heard of for this mandate (`paused`, `cancelled`), or undefined. A Map lookup. */
  heldAs(mandateId: number): string | undefined;
  /** A status change, as heard from the database or made by this process. */
  note(mandateId: number, status: string): void;
}

function createHolds(now: () => number = Date.now): MandateHolds {
  const held = new Map<number, { status: string; at: number }>();
  let swept = now();
  const holding = HOLDING_MANDATE_STATUSES as readonly string[];
  return {
    heldAs: (id) => held.get(id)?.status,
    note(id, status) {
      const t = now();
      if (holding.includes(status)) held.set(id, { status, at: t });
      else held.delete(id);
      if (t - swept < KEEP_MS) return;
      swept = t;
      for (const [k, v] of held) if (t - v.at > KEEP_MS) held.delete(k);
    },
  };
}

const byDatabase = new WeakMap<Database, Promise<MandateHolds>>();

/** The holds of this database handle, listening from the first call on (one listener per handle). */
export function mandateHolds(database: Database): Promise<MandateHolds> {
  let holds = byDatabase.get(database);
  if (holds === undefined) {
    const h = createHolds();
    holds = database
      .listen(MANDATE_STATUS_CHANNEL, (payload) => {
        const [id, status] = payload.split(' ');
        if (id !== undefined && status !== undefined) h.note(Number(id), status);
      })
      .then(() => h);
    // A failed start is not kept: the next run tries again.
    holds.catch(() => byDatabase.delete(database));
    byDatabase.set(database, holds);
  }
  return holds;
}

/**
 * A hold this process just committed, noted before its caller answers, so a sender of this
 * process never needs the notification's round trip for it. Nothing to do when no run of this
 * process has started listening (the launch reads the status from the database).
 */
export async function noteHold(database: Database, mandateId: number, status: string): Promise<void> {
  await byDatabase.get(database)?.then(
    (holds) => holds.note(mandateId, status),
    () => {},
  );
}
