import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMandate } from '../../src/billing/mandates/index.ts';
import { runBilling } from '../../src/billing/run/run.ts';
import { runCli } from '../support/cli.ts';
import { hasServer, serverSkipReason } from '../support/db.ts';
import { startWorld, type World } from '../support/world.ts';

/** The CLI of events, webhooks, mandate changes and the forecast, as a user runs it. */
describe.skipIf(!hasServer)('rebill CLI: events, webhooks, changes, forecast', () => {
  let w: World;
  let env: Record<string, string>;
  beforeAll(async () => {
    w = await startWorld({ env: { REBILL_WEBHOOK_ALLOW_INSECURE: '1' } });
    env = { ...w.env, REBILL_LOG_LEVEL: 'warn' };
  });
  afterAll(async () => w?.close());

  it('manages a mandate change, forecasts it, and reads the events', { timeout: 240_000 }, async () => {
    const t0 = new Date('2027-01-01T09:00:00Z');
    const app = await w.app(t0);
    const m = await createMandate(app, {
      customerRef: 'cli-chg',
      intent: 'subscription',
      amount: 1500,
      currency: 'GBP',
      narrative: 'Plan',
      interval: '1 month',
      start: t0,
      credential: { link: (await w.verify()).href },
    });
    await runBilling(app, { asOf: t0, trigger: 'test' });

    const update = await runCli(
      [
        'mandates',
        'update',
        String(m.id),
        '--amount',
        '2500',
        '--effective',
        '2099-01-01T00:00:00Z',
        '--json',
      ],
      env,
    );
    expect(update.code, update.stderr).toBe(0);
    const changeId = JSON.parse(update.stdout).change.id as number;
    const changes = await runCli(['mandates', 'changes', String(m.id)], env);
    expect(changes.stdout).toMatch(new RegExp(`${changeId}\\s+2099-01-01T00:00:00Z\\s+scheduled`));
    const cancelled = await runCli(['mandates', 'cancel-change', String(m.id), String(changeId)], env);
    expect(cancelled.stdout).toContain(`change ${changeId} of mandate ${m.id} is cancelled`);
    const now = await runCli(['mandates', 'update', String(m.id), '--amount', '2500'], env);
    expect(now.code, now.stderr).toBe(0);
    expect(now.stdout).toMatch(/changed .*25\.00 GBP/);
    // errors name the flags
    const bad = await runCli(
      ['mandates', 'update', String(m.id), '--amount', '2600', '--proration', 'charge'],
      env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--proration: applies to a change effective now/);
    const anchor = await runCli(['mandates', 'update', String(m.id), '--billing-anchor', '2020-01-01'], env);
    expect(anchor.code).toBe(2);
    expect(anchor.stderr).toMatch(/--billing-anchor: must be in the future/);

    const fc = await runCli(
      [
        'forecast',
        '--from',
        '2027-01-02T00:00:00Z',
        '--to',
        '2027-04-01T00:00:00Z',
        '--mandate-id',
        String(m.id),
        '--json',
      ],
      env,
    );
    expect(fc.code, fc.stderr).toBe(0);
    const f = JSON.parse(fc.stdout);
    // Feb 1 and Mar 1 (Apr 1 is the window's open end), at the new amount
    expect(f.items.map((i: { amount: number }) => i.amount)).toEqual([2500, 2500]);
    expect(f.totals).toEqual([
      { bucket: '2027-02', currency: 'GBP', charges: 1, amount: 2500 },
      { bucket: '2027-03', currency: 'GBP', charges: 1, amount: 2500 },
    ]);
    const csv = await runCli(
      [
        'forecast',
        '--from',
        '2027-01-02T00:00:00Z',
        '--to',
        '2027-04-01T00:00:00Z',
        '--mandate-id',
        String(m.id),
        '--csv',
      ],
      env,
    );
    expect(csv.stdout.trim().split('\n')).toHaveLength(3);
    expect(csv.stdout.split('\n')[0]).toBe(
      'mandate_id,customer_ref,kind,cycle,due_at,amount,credit_applied,currency',
    );
    const backwards = await runCli(['forecast', '--from', '2027-04-01', '--to', '2027-01-01'], env);
    expect(backwards.code).toBe(2);
    expect(backwards.stderr).toMatch(/--to: must be after from/);

    const events = await runCli(['events', 'list', '--mandate-id', String(m.id), '--json'], env);
    expect(events.code, events.stderr).toBe(0);
    const types = JSON.parse(events.stdout).items.map((e: { type: string }) => e.type);
    // newest first, as the API lists them
    expect(types).toEqual(['mandate.updated', 'charge.authorized', 'mandate.created']);
    const badType = await runCli(['events', 'list', '--type', 'charge.bogus'], env);
    expect(badType.code).toBe(2);
    expect(badType.stderr).toMatch(/--type/);
  });

  it('adds, lists, tests and removes a webhook endpoint; refuses a bad one naming the flag', {
    timeout: 240_000,
  }, async () => {
    const add = await runCli(
      ['webhooks', 'add', 'http://127.0.0.1:9/hook', '--events', 'charge.refused,ping'],
      env,
    );
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toMatch(/signing secret \(shown once\): whsec_[A-Za-z0-9_-]{43}/);
    const id = /endpoint (\d+) added/.exec(add.stdout)?.[1];
    const list = await runCli(['webhooks', 'list'], env);
    expect(list.stdout).toMatch(
      new RegExp(`${id}\\s+http://127.0.0.1:9/hook\\s+charge.refused,ping\\s+enabled`),
    );
    expect(list.stdout).not.toContain('whsec_');
    const ping = await runCli(['webhooks', 'test', id!], env);
    expect(ping.stdout).toMatch(/ping event \d+ queued/);
    // nothing listens on port 9: the delivery fails and waits for its retry
    const deliver = await runCli(['webhooks', 'deliver'], env);
    expect(deliver.stdout).toContain('delivered 0, to retry 1, failed for good 0');
    const deliveries = await runCli(['webhooks', 'deliveries', id!], env);
    expect(deliveries.stdout).toMatch(/ping\s+-\s+pending\s+1\s+-\s+ECONNREFUSED/);
    const removed = await runCli(['webhooks', 'remove', id!], env);
    expect(removed.stdout).toContain(`webhook endpoint ${id} removed`);
    const badEvents = await runCli(
      ['webhooks', 'add', 'https://hooks.example.com/x', '--events', 'charge.bogus'],
      env,
    );
    expect(badEvents.code).toBe(2);
    expect(badEvents.stderr).toMatch(/--events: not an event type/);
    const badUrl = await runCli(['webhooks', 'add', 'http://hooks.example.com/x'], env);
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/url: http is allowed to loopback/);
  });
});

describe.skipIf(hasServer)('rebill CLI: events, webhooks, changes, forecast', () => {
  it.skip(`child processes: ${serverSkipReason}`, () => {});
});
