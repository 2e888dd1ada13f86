import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, runCli } from '../support/cli.ts';
import { loseNextAnswer, movePaypalAt, paypalAtSandbox, refundsSent } from '../support/paypal.ts';
import { startWorld, type World } from '../support/world.ts';

/** `rebill paypal ...` as an operator runs it: child processes against the sandbox over HTTP. */
describe('rebill paypal', () => {
  let w: World;
  let env: Record<string, string>;
  let dispose = () => {};
  beforeAll(async () => {
    w = await startWorld();
    ({ env, dispose } = cliEnv(w));
  });
  afterAll(async () => {
    await w?.close();
    dispose();
  });

  const cli = (...args: string[]) => runCli(['paypal', ...args], env);
  async function track(amount: number, lastEvent?: 'authorized') {
    const s = await paypalAtSandbox(w, { amount, ...(lastEvent ? { lastEvent } : {}) });
    const r = await cli(
      'track',
      '--events-link',
      s.eventsLink,
      '--amount',
      String(amount),
      '--currency',
      'GBP',
      '--customer-ref',
      'cli-pp',
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return { ...s, id: String(JSON.parse(r.stdout).id) };
  }

  it('tracks, partially refunds, refuses what the rules refuse with exit 2, and sends a lost refund once', {
    timeout: 240_000,
  }, async () => {
    const a = await track(5000);
    const b = await track(2000, 'authorized');
    const c = await track(3000);

    const p1 = await cli('partial-refund', a.id, '--amount', '1000');
    expect(p1.stdout).toMatch(/^partialRefund \S+-PR1 10\.00 GBP: accepted/);
    const p2 = await cli('partial-refund', a.id, '--amount', '1500', '--currency', 'GBP');
    expect(p2.stdout).toMatch(/-PR2 15\.00 GBP: accepted/);
    const p3 = await cli('partial-refund', a.id, '--amount', '2600');
    expect(p3.code).toBe(2);
    expect(p3.stderr).toMatch(/would exceed what is left, 25\.00 GBP/);
    expect(refundsSent(w, a.paymentId).map((e) => e.amount)).toEqual([1000, 1500]);

    const early = await cli('refund', b.id);
    expect(early.code).toBe(2);
    expect(early.stderr).toMatch(/latest event is authorized; a refund needs sentForSettlement/);
    await movePaypalAt(w, b.eventsLink, 'sentForSettlement');
    expect((await cli('refund', b.id)).stdout).toMatch(/^refund \S+-R1 20\.00 GBP: accepted/);
    expect(refundsSent(w, b.paymentId)).toHaveLength(1);

    await loseNextAnswer(w, c.paymentId, 'refund');
    expect((await cli('refund', c.id)).stdout).toMatch(/: unknown \(the answer was lost/);
    expect((await cli('refund', c.id)).code).toBe(2);
    const shown = await cli('show', c.id);
    expect(shown.stdout).toMatch(/last event sentForRefund, 30\.00 GBP, refunded 30\.00 GBP, left 0\.00 GBP/);
    expect(refundsSent(w, c.paymentId)).toHaveLength(1);

    const list = await cli('list', '--customer-ref', 'cli-pp', '--json');
    expect(JSON.parse(list.stdout).items.map((p: { id: number }) => String(p.id))).toEqual([
      c.id,
      b.id,
      a.id,
    ]);
  });
});
