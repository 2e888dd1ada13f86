import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import { prepareBatch } from '../../src/billing/charge/prepare.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import {
  attemptsOf,
  authorizationsOn,
  chargesOf,
  claimDue,
  dueMandates,
  runTally,
} from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * A blocked credential is never sent to the gateway, counted at the sandbox: not when a refusal
 * earlier in the same credential's group blocked it, not when it was blocked before the run, and
 * not when it was blocked between the claim and the write-ahead. The charges behind it wait for
 * a new card (needs_new_credential) instead.
 */
describe.skipIf(!hasServer)('charge: a blocked credential is never sent (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  const runAt = new Date('2026-05-01T10:00:00Z');
  let w: World;
  let app: App;
  beforeEach(async () => {
    w = await startWorld();
    app = await w.app(runAt);
  });
  afterEach(async () => w?.close());

  const credentialOf = async (mandateId: number) => {
    const rows = await app.database.rows(
      sql`select cr.id, cr.status from mandates m join credentials cr on cr.id = m.credential_id where m.id = ${mandateId}`,
    );
    return { id: Number(rows[0]!.id), status: String(rows[0]!.status) };
  };

  /** Authorization requests the sandbox received, on any chain (settles are not counted). */
  const authorizeRequests = () =>
    w.sandbox.ledger().filter((e) => e.op === 'authorize' || e.op === 'migrate').length;

  /** Block a card outside any run, as a refusal on another mandate or an operator would. */
  const block = (credentialId: number) =>
    app.database.rows(
      sql`update credentials set status = 'blocked', status_reason = 'blocked in test' where id = ${credentialId}`,
    );

  it('a refusal that blocks the card stops the rest of its group: one request, the others not sent', async () => {
    const ms = await dueMandates(w, app, { tag: 'group', n: 3, at, shared: true });
    const chainId = ms[0]!.chainId;
    // The first charge of the group is refused with a code that blocks the card.
    w.sandbox.script({ match: { chainId }, outcomes: [{ type: 'refuse', code: '14' }] });
    const requestsBefore = authorizeRequests();

    const report = await runBilling(app, { asOf: runAt, trigger: 'test' });

    expect(authorizationsOn(w, chainId)).toHaveLength(1);
    expect(authorizeRequests() - requestsBefore).toBe(1);
    expect(report.counts.attempted).toBe(1);
    expect((await credentialOf(ms[0]!.id)).status).toBe('blocked');
    const states = [];
    for (const m of ms) {
      const [c] = await chargesOf(app, m.id);
      states.push([c!.state, (await attemptsOf(app, c!.id)).map((a) => a.state)]);
    }
    // Which mandate's charge went first is the claim's order; exactly one was refused.
    expect(states.filter(([, a]) => (a as string[])[0] === 'refused')).toHaveLength(1);
    expect(states.filter(([, a]) => (a as string[])[0] === 'not_sent')).toHaveLength(2);
    expect(states.every(([s]) => s === 'needs_new_credential')).toBe(true);

    // A later run sends nothing on it either.
    await runBilling(app, { asOf: new Date('2026-05-05T10:00:00Z'), trigger: 'test' });
    expect(authorizationsOn(w, chainId)).toHaveLength(1);
  });

  it('a credential blocked before the run: no request, its charges wait for a new card', async () => {
    const ms = await dueMandates(w, app, { tag: 'before', n: 2, at, shared: true });
    const other = await dueMandates(w, app, { tag: 'healthy', n: 1, at });
    await block((await credentialOf(ms[0]!.id)).id);
    const requestsBefore = authorizeRequests();

    const report = await runBilling(app, { asOf: runAt, trigger: 'test' });

    expect(authorizationsOn(w, ms[0]!.chainId)).toHaveLength(0);
    // Only the healthy card's charge reached the sandbox.
    expect(authorizationsOn(w, other[0]!.chainId)).toHaveLength(1);
    expect(authorizeRequests() - requestsBefore).toBe(1);
    expect(report.counts.attempted).toBe(1);
    for (const m of ms) {
      const [c] = await chargesOf(app, m.id);
      expect(c!.state).toBe('needs_new_credential');
      expect(await attemptsOf(app, c!.id)).toEqual([]);
    }
  });

  it('a credential blocked between the claim and the write-ahead: not written ahead, not sent', async () => {
    const ms = await dueMandates(w, app, { tag: 'between', n: 2, at, shared: true });
    const other = await dueMandates(w, app, { tag: 'fine', n: 1, at });
    const claimed = await claimDue(app, runAt);
    expect(claimed).toHaveLength(3);
    // The claim read the card as active; it is blocked before the batch is written ahead.
    await block((await credentialOf(ms[0]!.id)).id);
    const book = runTally(app);

    const groups = await prepareBatch(app, claimed, runAt, book);

    const sent = groups.flat().map((r) => r.attempt.charge.mandateId);
    expect(sent).toEqual([other[0]!.id]);
    for (const m of ms) {
      const [c] = await chargesOf(app, m.id);
      expect(c!.state).toBe('pending');
      expect(await attemptsOf(app, c!.id)).toEqual([]);
    }
    expect(authorizationsOn(w, ms[0]!.chainId)).toHaveLength(0);
  });
});

describe.skipIf(hasServer)('charge: a blocked credential is never sent', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
