import { sql } from 'drizzle-orm';
import type { App } from '../../src/app.ts';
import { cancelMandate, pauseMandate, resumeMandate } from '../../src/billing/mandates/index.ts';
import type { Database } from '../../src/db/client.ts';
import { num } from '../../src/db/values.ts';
import type { LedgerEntry } from '../../src/sandbox/server.ts';

/**
 * The soak's operator: pauses, resumes and cancels mandates at random moments while workers
 * run (and are killed), and checks what "an operator wins over work in flight" promises. When
 * a pause or cancel returns (committed), the mandate's attempts so far are noted; until it is
 * resumed, no further attempt may be written ahead for it and no further authorization may
 * reach the gateway. A cancelled mandate must have nothing left waiting at the end.
 */
export function createOperator(
  app: App,
  database: Database,
  ledger: () => LedgerEntry[],
  random: () => number,
) {
  const held = new Map<number, { refs: Set<string>; cancelled: boolean }>();
  const actions = { paused: 0, resumed: 0, cancelled: 0, refused: 0 };
  const violations = { sentWhileHeld: 0, waitingOnCancelled: 0 };
  const examples: Record<string, string[]> = {};
  const flag = (kind: keyof typeof violations, example: string) => {
    violations[kind]++;
    const list = examples[kind] ?? [];
    examples[kind] = list;
    if (list.length < 5) list.push(example);
  };
  const refsOf = async (mandateId: number) =>
    new Set(
      (
        await database.rows(
          sql`select a.transaction_reference from attempts a join charges c on c.id = a.charge_id where c.mandate_id = ${mandateId}`,
        )
      ).map((r) => String(r.transaction_reference)),
    );
  const prefix = (mandateId: number) => `${app.config.billing.referencePrefix}-${mandateId}-`;
  /** Everything written ahead or sent for a held mandate since its hold must be in its snapshot. */
  const verify = async (mandateId: number) => {
    const h = held.get(mandateId);
    if (!h) return;
    for (const ref of await refsOf(mandateId))
      if (!h.refs.has(ref))
        flag('sentWhileHeld', `attempt ${ref} written ahead while mandate ${mandateId} was held`);
    for (const e of ledger())
      if (
        e.op === 'authorize' &&
        e.transactionReference?.startsWith(prefix(mandateId)) &&
        !h.refs.has(e.transactionReference)
      )
        flag(
          'sentWhileHeld',
          `${e.transactionReference} reached the gateway while mandate ${mandateId} was held`,
        );
  };

  return {
    async act(): Promise<void> {
      const r = random();
      try {
        if (r < 0.35 && held.size > 0) {
          const paused = [...held].filter(([, h]) => !h.cancelled);
          const pick = paused[Math.floor(random() * paused.length)];
          if (!pick) return;
          await verify(pick[0]);
          await resumeMandate(app, pick[0]);
          held.delete(pick[0]);
          actions.resumed++;
          return;
        }
        const rows = await database.rows(
          sql`select id from mandates where status = 'active' order by id offset ${Math.floor(random() * 50)} limit 1`,
        );
        const id = rows[0] ? num(rows[0].id) : undefined;
        if (id === undefined) return;
        if (r < 0.8) {
          await pauseMandate(app, id);
          actions.paused++;
          held.set(id, { refs: await refsOf(id), cancelled: false });
        } else {
          await cancelMandate(app, id);
          actions.cancelled++;
          held.set(id, { refs: await refsOf(id), cancelled: true });
        }
      } catch (err) {
        // A conflict (the mandate moved meanwhile: dunning stopped it, its plan completed) is
        // an answer; anything else is the soak's failure.
        if ((err as { code?: string }).code !== 'conflict') throw err;
        actions.refused++;
      }
    },
    /** The end check: held mandates still held, and nothing waiting on a cancelled one. */
    async finish() {
      for (const id of held.keys()) await verify(id);
      for (const r of await database.rows(
        sql`select c.id, c.mandate_id, c.state from charges c join mandates m on m.id = c.mandate_id
             where m.status = 'cancelled' and c.state in ('pending', 'retry_scheduled', 'needs_new_credential', 'stopped')`,
      ))
        flag('waitingOnCancelled', `charge ${r.id} of cancelled mandate ${r.mandate_id} is ${r.state}`);
      return { actions, violations, examples };
    },
  };
}
