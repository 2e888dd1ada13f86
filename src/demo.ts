import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { type App, openApp, openDatabase } from './app.ts';
import { followSettlements } from './billing/charge/follow.ts';
import { createMandate, listMandates, queueCharge } from './billing/mandates/index.ts';
import { listCharges } from './billing/operator/charges.ts';
import { type RunReport, runBilling } from './billing/run/run.ts';
import { fixedClock } from './clock.ts';
import { loadConfig } from './config.ts';
import { formatMoney } from './domain/money.ts';
import { createDeliverer, verifySignature } from './events/deliver.ts';
import { createEndpoint } from './events/endpoints.ts';
import { legacyStatus } from './legacy/erase.ts';
import { importLegacy } from './legacy/import.ts';
import { readCsv } from './legacy/reader.ts';
import { silentLogger } from './logger.ts';
import { LIQUIDO_SANDBOX_DEFAULTS, liquidoSandbox } from './sandbox/liquido/index.ts';
import { startSandbox } from './sandbox/server.ts';

const DAY = 86_400_000;

/**
 * `npm run demo`: a billing story on a fresh machine with nothing but Node. An embedded
 * database in a temporary directory, the sandbox in-process, mandates of every intent (two of
 * them imported from a legacy file, one on Liquido), a run with an authorization, a
 * settlement and a refusal with its dunning decision, the retry that succeeds two simulated
 * days later, a summary, and the merchant's webhook receiver getting the story's events.
 * Leaves nothing running and nothing on disk, says so, and ends with the next steps.
 */
export async function runDemo(
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rebill-demo-'));
  const liquido = liquidoSandbox();
  const sandbox = await startSandbox({ port: 0, plugins: [liquido] });
  let app: App | undefined;
  let receiver: Server | undefined;
  try {
    const config = loadConfig({
      REBILL_DATA_DIR: dir,
      WORLDPAY_URL: sandbox.url,
      WORLDPAY_USERNAME: 'sandbox',
      WORLDPAY_PASSWORD: 'sandbox',
      WORLDPAY_ENTITY: 'MindPalaceLtd',
      LIQUIDO_URL: sandbox.url,
      LIQUIDO_CLIENT_ID: LIQUIDO_SANDBOX_DEFAULTS.clientId,
      LIQUIDO_CLIENT_SECRET: LIQUIDO_SANDBOX_DEFAULTS.clientSecret,
      LIQUIDO_API_KEY: LIQUIDO_SANDBOX_DEFAULTS.apiKey,
      REBILL_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      REBILL_EVENT_LAG_MINUTES: '0',
      // Simulated time: runs are asked for days and months ahead of the wall clock.
      REBILL_ALLOW_FUTURE_RUNS: '1',
      // The demo's webhook receiver listens on loopback over http.
      REBILL_WEBHOOK_ALLOW_INSECURE: '1',
    });
    out(`rebill demo: embedded database in ${dir}, sandbox at ${sandbox.url}\n`);
    const t0 = new Date('2026-12-01T09:00:00Z');
    const database = await openDatabase(config);
    app = await openApp(config, { database, clock: fixedClock(t0), logger: silentLogger });

    const verify = async (cardHolderName?: string) => {
      const res = await request(`${sandbox.url}/_sandbox/verifications`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(cardHolderName ? { cardHolderName } : {}),
      });
      return (await res.body.json()) as { chainId: string; href: string };
    };

    // The merchant's side: a webhook receiver that checks every signature.
    const received: { type: string; signed: boolean }[] = [];
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const signed = verifySignature(String(req.headers['rebill-signature'] ?? ''), body, secrets);
        received.push({ type: String((JSON.parse(body) as { type: string }).type), signed });
        res.writeHead(signed ? 200 : 400).end();
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', r));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/rebill`;
    const endpoint = await createEndpoint(app, { url: hookUrl, events: ['*'], description: 'demo receiver' });
    const secrets = [endpoint.secret];

    out('1. Mandates');
    const gym = await createMandate(app, {
      customerRef: 'ada',
      intent: 'subscription',
      amount: 2999,
      currency: 'GBP',
      narrative: 'Mind Palace Gym',
      interval: '1 month',
      start: t0,
      timezone: 'Europe/London',
      credential: { link: (await verify()).href },
    });
    const sofa = await createMandate(app, {
      customerRef: 'grace',
      intent: 'instalment',
      totalAmount: 100_000,
      instalments: 3,
      currency: 'EUR',
      narrative: 'Sofa in 3',
      interval: '1 month',
      start: t0,
      timezone: 'Europe/Paris',
      credential: { link: (await verify()).href },
    });
    const topUp = await createMandate(app, {
      customerRef: 'alan',
      intent: 'unscheduled',
      amount: 1500,
      currency: 'USD',
      narrative: 'Top-up',
      credential: { link: (await verify()).href },
    });
    await queueCharge(app, topUp.id, { amount: 2000 });
    const low = await verify();
    const magazine = await createMandate(app, {
      customerRef: 'barbara',
      intent: 'subscription',
      amount: 1200,
      currency: 'GBP',
      narrative: 'Weekly Magazine',
      interval: '1 week',
      start: t0,
      credential: { link: low.href },
    });
    // The issuer declines the first attempt for insufficient funds (refusal code 51).
    sandbox.script({ match: { chainId: low.chainId }, outcomes: [{ type: 'refuse', code: '51' }] });
    const { cardId } = liquido.state.addCard({ cardHolderName: 'ANA PEREZ', last4: '4242' });
    const gimnasio = await createMandate(app, {
      customerRef: 'ana',
      intent: 'subscription',
      amount: 9900,
      currency: 'PEN',
      narrative: 'Gimnasio Lima',
      interval: '1 month',
      start: t0,
      gateway: 'liquido',
      credential: { liquidoCardId: cardId },
    });
    for (const m of [gym, sofa, topUp, magazine, gimnasio]) {
      out(
        `   #${m.id} ${m.customerRef.padEnd(8)} ${m.intent.padEnd(12)} ${formatMoney(m.amount, m.currency).padStart(12)}  ${m.interval ?? 'on request'}  via ${m.gateway}`,
      );
    }

    out('\n2. Legacy import (card numbers from an older system, encrypted until their first charge)');
    const csv = [
      'legacy_id,customer_ref,intent,amount,currency,interval,next_charge_at,timezone,instalments_total,instalments_paid,entity,narrative,instrument_type,card_number,expiry_month,expiry_year,card_holder_name,token_href,dpan,scheme_reference',
      'old-1,edsger,subscription,1999,GBP,1 month,2026-12-01,Europe/London,,,MindPalaceLtd,Legacy monthly,card/plain,4444333322221111,12,2030,Edsger Dijkstra,,,',
      'old-2,edsger,subscription,500,GBP,1 month,2026-12-01,Europe/London,,,MindPalaceLtd,Legacy add-on,card/plain,4444333322221111,12,2030,Edsger Dijkstra,,,',
      'old-3,donald,subscription,1000,GBP,1 month,2026-12-01,Europe/London,,,MindPalaceLtd,Legacy broken,card/plain,4444333322221112,12,2030,Donald Knuth,,,',
    ].join('\n');
    const report = await importLegacy(database, readCsv(Readable.from([csv])), {
      key: config.encryptionKey,
      now: t0,
    });
    out(`   read ${report.read}, imported ${report.imported}, rejected ${report.rejectedRows}`);
    for (const r of report.rejected) out(`   line ${r.line}: ${r.field}: ${r.reason}`);
    out(`   mandates holding card data: ${(await legacyStatus(database)).withCardData}`);

    out('\n3. Billing run at 2026-12-01 10:00 UTC');
    printRun(out, await runBilling(app, { asOf: new Date(t0.getTime() + 3_600_000), trigger: 'demo' }));
    const dunning = (await listCharges(database, { state: 'retry_scheduled' })).items;
    for (const c of dunning) {
      out(`   charge ${c.id} (mandate ${c.mandateId}): ${c.lastAttempt?.decisionReason}`);
    }

    out('\n4. Two simulated days later: the retry');
    const t2 = new Date(t0.getTime() + 2 * DAY + 3_600_000);
    printRun(out, await runBilling(app, { asOf: t2, trigger: 'demo' }));

    out('\n5. Settlement follow-up (202 means accepted; the events say settled)');
    const settled = await followSettlements(app, { limit: 1000 });
    out(`   settled ${settled.settled}, settlement failed ${settled.failed}`);

    out('\n6. Summary');
    const mandates = (await listMandates(database, { limit: 100 })).items;
    const charges = (await listCharges(database, { limit: 1000 })).items;
    for (const m of mandates) {
      const mine = charges.filter((c) => c.mandateId === m.id);
      const states = mine
        .map((c) => `${c.state}${c.attemptCount > 1 ? ` after ${c.attemptCount} attempts` : ''}`)
        .join(', ');
      out(
        `   #${m.id} ${m.customerRef.padEnd(8)} ${m.status.padEnd(9)} next ${m.nextDueAt?.slice(0, 10) ?? '-'.padEnd(10)}  ${states || 'no charge'}`,
      );
    }
    const ledger = sandbox.ledger();
    const count = (op: string, outcome: string) =>
      ledger.filter((e) => e.op === op && e.outcome === outcome).length;
    out(
      `   Worldpay sandbox saw ${count('authorize', 'authorized') + count('migrate', 'authorized')} authorizations, ` +
        `${count('authorize', 'refused')} refusal, ${count('settle', 'accepted')} settlements; ` +
        `${sandbox.stats().staleLinkUses} stale links used`,
    );
    out(`   Liquido sandbox holds ${liquido.state.ledger().payments.length} captured pre-authorization(s)`);
    out(`   mandates still holding card data: ${(await legacyStatus(database)).withCardData}`);

    out(`\n7. Webhooks: the merchant's receiver at ${hookUrl}`);
    const deliverer = createDeliverer(app);
    const sent = await deliverer.drain();
    await deliverer.close();
    const byType = new Map<string, number>();
    for (const r of received) byType.set(r.type, (byType.get(r.type) ?? 0) + 1);
    out(
      `   delivered ${sent.delivered} signed events (${received.filter((r) => r.signed).length} verified, ${received.filter((r) => !r.signed).length} refused):`,
    );
    for (const [type, n] of [...byType].sort(([a], [b]) => a.localeCompare(b)))
      out(`   ${String(n).padStart(4)}  ${type}`);
    out(NEXT_STEPS.replace('{dir}', dir));
  } finally {
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    await app?.close();
    await app?.database.close();
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where the reader goes after the story: the README's local walkthrough and its production
 * notes. The story ran on simulated time with a throwaway encryption key, so its database is
 * of no use afterwards and is deleted; the walkthrough builds one of the reader's own.
 */
const NEXT_STEPS = `
That was the demo. Its database ({dir}) is deleted now: it ran on simulated time with a
throwaway card-data key. Next steps (README, "Try it locally in five minutes"):
   npx rebill sandbox --port 8787 &                 the built-in Worldpay sandbox
   export WORLDPAY_URL=http://127.0.0.1:8787 WORLDPAY_USERNAME=sandbox WORLDPAY_PASSWORD=sandbox
   export REBILL_ADMIN_TOKENS=local-admin-token
   curl -s -X POST http://127.0.0.1:8787/_sandbox/verifications    a card's first recurring link
   npx rebill mandates create --customer-ref ada --intent subscription --amount 2999 --currency GBP \\
     --narrative "Gym membership" --interval "1 month" --link HREF
   npx rebill run
   npx rebill admin                                 then http://127.0.0.1:8080/ui
Going to production: PostgreSQL first (DATABASE_URL). The embedded database serves one process
at a time (every command is refused, exit 4, while rebill admin or rebill daemon runs) and its
first command is slow and memory-heavy (README, "Going to production").`;

function printRun(out: (l: string) => void, r: RunReport): void {
  const c = r.counts;
  out(
    `   due ${c.due}: authorized ${c.authorized}, refused ${c.refused}, settle requested ${c.settleRequested}, ` +
      `retry scheduled ${c.retryScheduled}, stopped ${c.stopped}`,
  );
  for (const x of r.refusals) {
    out(
      `   refusal ${x.code}${x.adviceCode ? `/MAC ${x.adviceCode}` : ''}: ${x.decision}, next attempt ${x.nextAttemptAt ?? '-'}`,
    );
  }
}
