import { describe, expect, it } from 'vitest';
import { recordDispute } from '../../src/billing/disputes/record.ts';
import { cliInProcess } from '../support/cli-in-process.ts';

/**
 * The commands of the four admin routes added beside the glossary (disputes list, mandates
 * undo-cancel and activity, webhooks update), each run through the CLI's own parser and code in
 * this process against the sandbox and this file's database, as the vocabulary test runs them.
 */
describe("the glossary's newest commands", () => {
  const { world, cli } = cliInProcess();
  async function ok(...args: string[]): Promise<string> {
    const r = await cli(...args);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    return r.stdout;
  }

  /** A monthly GBP 12.34 mandate from 2026-02-01 10:00 UTC (in the past, billed from there), its first cycle charged at 11:00. */
  async function chargedMandate(ref: string): Promise<{ id: number; chargeId: number }> {
    const v = await world().verify();
    const m = JSON.parse(
      await ok(
        ...['mandates', 'create', '--customer-ref', ref, '--intent', 'subscription', '--amount', '1234'],
        ...['--currency', 'GBP', '--narrative', 'Glossary', '--interval', '1 month'],
        ...['--start', '2026-02-01T10:00:00Z', '--backfill', '--link', v.href, '--json'],
      ),
    ) as { id: number };
    await ok('run', '--as-of', '2026-02-01T11:00:00Z', '--mandate-id', String(m.id), '--json');
    const charges = JSON.parse(await ok('charges', 'list', '--mandate-id', String(m.id), '--json')) as {
      items: { id: number; state: string }[];
    };
    expect(charges.items).toHaveLength(1);
    return { id: m.id, chargeId: charges.items[0]!.id };
  }

  it('mandates undo-cancel keeps a mandate whose cancel was scheduled', { timeout: 120_000 }, async () => {
    const m = await chargedMandate('glo-undo');
    const cancelled = await ok('mandates', 'cancel', String(m.id), '--at-period-end');
    expect(cancelled).toBe(`mandate ${m.id} is active (cancels at period end)\n`);

    const kept = await ok('mandates', 'undo-cancel', String(m.id));
    expect(kept).toBe(`mandate ${m.id} is active and renews (next due 2026-03-01T10:00:00Z)\n`);
    const shown = JSON.parse(await ok('mandates', 'show', String(m.id), '--json'));
    expect(shown).toMatchObject({ status: 'active', cancelAtPeriodEnd: false });

    // nothing scheduled any more: refused, and --json prints nothing
    const again = await cli('mandates', 'undo-cancel', String(m.id), '--json');
    expect(again.code).toBe(4);
    expect(again.stdout).toBe('');
    expect(again.stderr).toBe(`rebill: mandate ${m.id} has no cancel scheduled\n`);
    const bad = await cli('mandates', 'undo-cancel', 'x1');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('id: expected a positive id');
  });

  it("mandates activity lists the mandate's audit trail, a pause on top", { timeout: 120_000 }, async () => {
    const m = await chargedMandate('glo-activity');
    await ok('mandates', 'pause', String(m.id));

    const page = JSON.parse(await ok('mandates', 'activity', String(m.id), '--json')) as {
      items: { id: number; entity: string; entityId: number; from: string | null; to: string }[];
      next: number | null;
    };
    expect(page.items[0]).toMatchObject({ entity: 'mandate', entityId: m.id, from: 'active', to: 'paused' });
    expect(page.items.some((a) => a.entity === 'charge' && a.entityId === m.chargeId)).toBe(true);

    const human = await ok('mandates', 'activity', String(m.id), '--limit', '1');
    const lines = human.split('\n');
    expect(lines[0]).toMatch(/^at\s+entity\s+id\s+from → to\s+reason\s+actor$/);
    expect(lines[2]).toMatch(
      new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ\\s+mandate\\s+${m.id}\\s+active → paused\\s`),
    );
    expect(lines[3]).toBe(`more: --before ${page.items[0]!.id}`);

    const older = JSON.parse(
      await ok('mandates', 'activity', String(m.id), '--before', String(page.items[0]!.id), '--json'),
    ) as { items: { id: number }[] };
    expect(older.items.map((a) => a.id)).toEqual(page.items.slice(1).map((a) => a.id));

    const bad = await cli('mandates', 'activity', String(m.id), '--limit', '1001');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--limit: expected an integer from 1 to 1000');
  });

  it('webhooks update changes the event types an endpoint receives', { timeout: 120_000 }, async () => {
    const added = JSON.parse(
      await ok('webhooks', 'add', 'https://hooks.example.com/rebill', '--events', 'charge.refused', '--json'),
    ) as { id: number; events: string[] };
    expect(added.events).toEqual(['charge.refused']);

    const updated = await ok(
      ...['webhooks', 'update', String(added.id), '--events', 'charge.failed, mandate.paused'],
      ...['--description', 'dunning desk'],
    );
    expect(updated).toBe(`webhook endpoint ${added.id} now receives charge.failed, mandate.paused\n`);
    expect(JSON.parse(await ok('webhooks', 'show', String(added.id), '--json'))).toMatchObject({
      events: ['charge.failed', 'mandate.paused'],
      description: 'dunning desk',
    });
    const all = JSON.parse(await ok('webhooks', 'update', String(added.id), '--events', '*', '--json'));
    expect(all).toMatchObject({ events: ['*'], description: 'dunning desk' });

    const none = await cli('webhooks', 'update', String(added.id));
    expect(none.code).toBe(2);
    expect(none.stderr).toBe('rebill: --events: give --events or --description to change\n');
    const unknown = await cli('webhooks', 'update', String(added.id), '--events', 'charge.nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^rebill: --events/);
    expect(JSON.parse(await ok('webhooks', 'show', String(added.id), '--json')).events).toEqual(['*']);
  });

  it('disputes list shows a dispute recorded on a charge', { timeout: 120_000 }, async () => {
    const m = await chargedMandate('glo-dispute');
    const other = await chargedMandate('glo-quiet');
    const app = await world().app(new Date('2026-02-10T08:00:00Z'));
    const recorded = await app.database.db.transaction((tx) =>
      recordDispute(app, tx, {
        chargeId: m.chargeId,
        kind: 'informationRequested',
        eventId: 'glossary-dispute-1',
        occurredAt: new Date('2026-02-10T07:59:30.250Z'),
        details: { amount: null, reasonCode: '10.4', reason: 'Fraud, card absent' },
      }),
    );
    expect(recorded?.dispute.status).toBe('information_requested');

    const page = JSON.parse(await ok('disputes', 'list', '--mandate-id', String(m.id), '--json'));
    expect(page).toEqual({
      items: [
        expect.objectContaining({
          chargeId: m.chargeId,
          status: 'information_requested',
          amount: 1234,
          currency: 'GBP',
          disputedAt: '2026-02-10T07:59:30.250Z',
        }),
      ],
      next: null,
    });
    const human = await ok(
      'disputes',
      'list',
      '--status',
      'information_requested',
      '--mandate-id',
      String(m.id),
    );
    const lines = human.split('\n');
    expect(lines[0]).toMatch(
      /^dispute\s+charge\s+status\s+amount\s+reason code\s+reason\s+disputed\s+charged back\s+policy$/,
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^${page.items[0].id}\\s+${m.chargeId}\\s+information_requested\\s+12\\.34 GBP\\s+10\\.4\\s+Fraud, card absent\\s+2026-02-10T07:59:30Z\\s+-\\s+-$`,
      ),
    );
    expect(lines.slice(3)).toEqual(['']);
    // the other mandate's charge has none, and none is charged back
    expect(
      JSON.parse(await ok('disputes', 'list', '--mandate-id', String(other.id), '--json')).items,
    ).toEqual([]);
    expect(JSON.parse(await ok('disputes', 'list', '--status', 'charged_back', '--json')).items).toEqual([]);

    const bad = await cli('disputes', 'list', '--mandate-id', '0');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--mandate-id: expected a positive id');
    const status = await cli('disputes', 'list', '--status', 'won');
    expect(status.code).toBe(2);
    expect(status.stderr).toContain("'won' is invalid");
  });
});
