import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import type { App } from '../../src/app.ts';
import type { ClaimedCharge } from '../../src/billing/charge/claim.ts';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { releaseCredentials } from '../../src/billing/sql/transitions.ts';
import { authorizationsOn, claimDue, dueMandates, linkData } from '../support/centre.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/**
 * One run sends a credential's charges at a time. Two mandates on one card, claimed by two
 * workers at once, would both go out on the same link; each answer gives a new one and the
 * credential would end on whichever committed last. The claim leases the credential with its
 * charges, and within a run a credential's charges claimed in a later batch wait for its earlier
 * group and go on the link that group ended on. Checked on what the sandbox received.
 */
describe.skipIf(!hasServer)('charge: one run sends a credential at a time (PostgreSQL)', () => {
  const at = new Date('2026-05-01T09:00:00Z');
  const runAt = new Date('2026-05-01T10:00:00Z');
  let w: World | undefined;
  afterEach(async () => {
    await w?.close();
    w = undefined;
  });

  /** The credential's current link, and the recurring link each authorization returned. */
  async function links(app: App, chainHref: string) {
    const current = await app.database.rows<{ href: string }>(sql`select l.href from credentials cr
      join links l on l.id = cr.current_link_id
      where cr.id = (select credential_id from links where href = ${chainHref} limit 1)`);
    const returned = await app.database.rows<{ transaction_reference: string; href: string }>(sql`select
        a.transaction_reference, l.href from payment_links l join attempts a on a.id = l.attempt_id
      where l.rel = 'payments:recurringAuthorize' and l.action_id is null`);
    return {
      current: current[0]?.href,
      returned: new Map(returned.map((r) => [r.transaction_reference, r.href])),
    };
  }

  const until = async (what: () => boolean) => {
    for (let i = 0; i < 400 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(what()).toBe(true);
  };

  // Two processes (two workers), and two runs of one process (a daemon's tick beside an
  // operator's run): each run is a holder of its own.
  it.each([
    { where: 'in another process', sameProcess: false },
    { where: 'in the same process', sameProcess: true },
  ])(
    'a second run $where leaves a credential the first holds, and sends it on the newest link after',
    async ({ sameProcess }) => {
      // A late answer well inside the request timeout: the second run is over long before it.
      w = await startWorld({ env: { WORLDPAY_TIMEOUT_MS: '15000' } });
      const first = await w.app(runAt);
      const second = sameProcess ? first : await w.app(runAt);
      expect(second.workerId === first.workerId).toBe(sameProcess);
      const [m] = await dueMandates(w, first, { tag: 'two-runs', n: 2, at, shared: true });
      const { chainId, href } = m!;
      // The first run's request is answered late: it holds the credential meanwhile.
      w.sandbox.script({
        match: { chainId },
        outcomes: [{ type: 'slow', ms: 3000, next: { type: 'authorize' } }],
      });

      const running = runBilling(first, { asOf: runAt, trigger: 'test', limit: 1 });
      await until(() => authorizationsOn(w!, chainId).length > 0 || w!.sandbox.ledger().length > 0);
      const meanwhile = await runBilling(second, { asOf: runAt, trigger: 'test' });
      expect(meanwhile.counts).toMatchObject({ attempted: 0 });
      expect((await running).counts).toMatchObject({ attempted: 1, authorized: 1 });
      // Released at the end of the first run, not left to run out: the next run takes it at once.
      const after = await runBilling(second, { asOf: runAt, trigger: 'test' });
      expect(after.counts).toMatchObject({ attempted: 1, authorized: 1 });

      const auths = authorizationsOn(w, chainId);
      const { current, returned } = await links(first, href);
      const one = returned.get(auths[0]!.transactionReference!)!;
      expect(auths.map((a) => a.linkUsed)).toEqual([linkData(href), linkData(one)]);
      expect(w.sandbox.stats().staleLinkUses).toBe(0);
      expect(current).toBe(returned.get(auths[1]!.transactionReference!));
      const leased = await first.database.rows(sql`select id from credentials where lease_owner is not null`);
      expect(leased).toEqual([]);
    },
  );

  it('a credential leased by another worker is not claimed until released or run out', async () => {
    w = await startWorld();
    const app = await w.app(at);
    await dueMandates(w, app, { tag: 'lease', n: 2, at, shared: true });
    const [a] = await dueMandates(w, app, { tag: 'other', n: 1, at });
    const taken = await claimDue(app, at, 'worker-a');
    expect(taken).toHaveLength(3);
    const other = taken.find((c) => c.mandateId === a!.id)!;
    const [held, left] = taken.filter((c) => c.mandateId !== a!.id) as [ClaimedCharge, ClaimedCharge];
    const shared = held.credentialId;
    expect(left.credentialId).toBe(shared);
    // worker-a lets go of two charges, as a run's end leaves them: the other card's with its
    // credential, and one of the shared card's while it keeps that credential.
    await app.database.rows(sql`update charges set lease_owner = null, lease_expires_at = null
      where id in (${other.id}, ${left.id})`);
    expect(await releaseCredentials(app.database, 'worker-a', new Set([other.credentialId]))).toBe(1);
    expect((await claimDue(app, at, 'worker-b')).map((c) => c.id)).toEqual([other.id]);

    // A run releases only what it holds.
    expect(await releaseCredentials(app.database, 'worker-b', new Set([shared]))).toBe(0);
    expect(await claimDue(app, at, 'worker-b')).toEqual([]);
    expect(await releaseCredentials(app.database, 'worker-a', new Set([shared]))).toBe(1);
    expect((await claimDue(app, at, 'worker-b')).map((c) => c.id)).toEqual([left.id]);

    // A lease that ran out (its worker died) is taken.
    await app.database.rows(sql`update credentials set lease_expires_at = now() - interval '1 second'
      where id = ${shared}`);
    await app.database.rows(
      sql`update charges set lease_owner = null, lease_expires_at = null where id = ${left.id}`,
    );
    expect((await claimDue(app, at, 'worker-c')).map((c) => c.id)).toEqual([left.id]);
  });

  it('a claim skips a credential whose row another claim holds, and sees its lease once committed', async () => {
    w = await startWorld();
    const app = await w.app(at);
    await dueMandates(w, app, { tag: 'race', n: 2, at, shared: true });
    const ids = await app.database.rows<{ id: number }>(sql`select id from credentials`);
    expect(ids).toHaveLength(1);
    // Another claim's transaction holds the credential's row (as the claim statement takes it).
    await app.database.db.transaction(async (tx) => {
      await app.database.rows(sql`select id from credentials for update`, tx);
      await app.database.rows(
        sql`update credentials set lease_owner = 'worker-a',
        lease_expires_at = now() + interval '5 minutes'`,
        tx,
      );
      expect(await claimDue(app, at, 'worker-b')).toEqual([]);
    });
    expect(await claimDue(app, at, 'worker-b')).toEqual([]);
    expect(await claimDue(app, at, 'worker-a')).toHaveLength(2);
  });

  it("a run's later batch goes after the credential's earlier group, on the link it ended on", async () => {
    // One charge per batch: the second mandate's charge is claimed while the first is in flight.
    w = await startWorld({ env: { REBILL_BATCH_SIZE: '1', REBILL_CONCURRENCY: '4' } });
    const app = await w.app(runAt);
    const [m] = await dueMandates(w, app, { tag: 'batches', n: 3, at, shared: true });
    const { chainId, href } = m!;
    w.sandbox.script({
      match: { chainId },
      outcomes: [
        { type: 'slow', ms: 400, next: { type: 'authorize' } },
        { type: 'slow', ms: 200, next: { type: 'authorize' } },
      ],
    });

    const report = await runBilling(app, { asOf: runAt, trigger: 'test' });
    expect(report.counts).toMatchObject({ attempted: 3, authorized: 3 });

    const auths = authorizationsOn(w, chainId);
    const { current, returned } = await links(app, href);
    const expected = [href, ...auths.slice(0, -1).map((a) => returned.get(a.transactionReference!)!)];
    expect(auths.map((a) => a.linkUsed)).toEqual(expected.map(linkData));
    expect(w.sandbox.stats().staleLinkUses).toBe(0);
    expect(current).toBe(returned.get(auths.at(-1)!.transactionReference!));
  });

  it("a later batch's group taken after the credential's earlier group ended goes on the link it left", async () => {
    // Claim order X1, Y, X2, one per batch, two senders: X2 is claimed while X1 is in flight
    // (its claim reads the link X1 was sent on) and taken from the queue once X1 is done.
    w = await startWorld({ env: { REBILL_BATCH_SIZE: '1', REBILL_CONCURRENCY: '2' } });
    const app = await w.app(runAt);
    const x = await w.verify();
    const y = await w.verify();
    const mandate = (customerRef: string, link: string) =>
      createMandate(app, {
        customerRef,
        intent: 'subscription',
        amount: 1000,
        currency: 'GBP',
        narrative: 'Centre test',
        interval: '1 month',
        start: at,
        credential: { link },
      });
    await mandate('x', x.href);
    await mandate('y', y.href);
    await mandate('x', x.href);
    w.sandbox.script({
      match: { chainId: x.chainId },
      outcomes: [{ type: 'slow', ms: 400, next: { type: 'authorize' } }],
    });
    w.sandbox.script({
      match: { chainId: y.chainId },
      outcomes: [{ type: 'slow', ms: 1200, next: { type: 'authorize' } }],
    });

    const report = await runBilling(app, { asOf: runAt, trigger: 'test' });
    expect(report.counts).toMatchObject({ attempted: 3, authorized: 3 });

    const auths = authorizationsOn(w, x.chainId);
    const { current, returned } = await links(app, x.href);
    const first = returned.get(auths[0]!.transactionReference!)!;
    expect(auths.map((a) => a.linkUsed)).toEqual([linkData(x.href), linkData(first)]);
    expect(w.sandbox.stats().staleLinkUses).toBe(0);
    expect(current).toBe(returned.get(auths[1]!.transactionReference!));
  });

  it('a card blocked in an earlier group is not sent in a later batch of the run', async () => {
    w = await startWorld({ env: { REBILL_BATCH_SIZE: '1', REBILL_CONCURRENCY: '4' } });
    const app = await w.app(runAt);
    const [m] = await dueMandates(w, app, { tag: 'blocked', n: 2, at, shared: true });
    const { chainId } = m!;
    // "Invalid card number" blocks the card (DUNNING.md); answered late, so the next batch is
    // claimed first.
    w.sandbox.script({
      match: { chainId },
      outcomes: [{ type: 'slow', ms: 400, next: { type: 'refuse', code: '14' } }],
    });

    const report = await runBilling(app, { asOf: runAt, trigger: 'test' });
    expect(authorizationsOn(w, chainId)).toHaveLength(1);
    expect(report.counts).toMatchObject({ attempted: 1 });
  });
});

describe.skipIf(hasServer)('charge: one run sends a credential at a time', () => {
  it.skip(`PostgreSQL: ${serverSkipReason}`, () => {});
});
