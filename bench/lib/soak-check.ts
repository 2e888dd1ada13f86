import { sql } from 'drizzle-orm';
import type { Database } from '../../src/db/client.ts';
import { date, num, str } from '../../src/db/values.ts';
import { classifyRefusal } from '../../src/domain/dunning/index.ts';
import type { LedgerEntry } from '../../src/sandbox/server.ts';
import { linkPosition } from './fault-proxy.ts';

/** What the soak checks at the end; every `violations.*` must be zero. */
export interface SoakCheck {
  counts: Record<string, number>;
  chargeStates: Record<string, number>;
  violations: Record<string, number>;
  /** A few examples of each violation, to start the investigation from. */
  examples: Record<string, string[]>;
}

const DAY = 86_400_000;
const UNFINISHED = ['pending', 'attempting', 'unknown', 'authorized', 'settle_failed'];

/**
 * Check the invariants from the sandbox ledger (what the gateway saw) and the database (what
 * rebill believes): nothing charged twice, nothing charged and forgotten, nothing authorized
 * and left unsettled, every due cycle materialised and finished or in dunning, credentials on
 * the newest link rebill was given, and the card retry ledger within the scheme rules.
 */
export async function checkSoak(
  database: Database,
  ledger: LedgerEntry[],
  opts: { endAt: Date; prefix: string; slowReferences: Set<string> },
): Promise<SoakCheck> {
  const violations: Record<string, number> = {
    unfinishedCharges: 0,
    retryDueButNotAttempted: 0,
    cyclesNotMaterialised: 0,
    cycleGaps: 0,
    duplicateAuthorizations: 0,
    authorizedAtGatewayUnknownToRebill: 0,
    authorizedButUnsettled: 0,
    credentialsBehindNewestStoredLink: 0,
    newLinkReceivedButNotStored: 0,
    reattemptsOver15In30Days: 0,
    attemptsAfterBlockingRefusal: 0,
    retriesBeforeAdviceWait: 0,
    v7WithoutFirstSchemeReference: 0,
  };
  const examples: Record<string, string[]> = {};
  const flag = (name: string, example: string) => {
    violations[name] = (violations[name] ?? 0) + 1;
    const list = examples[name] ?? [];
    if (list.length < 5) list.push(example);
    examples[name] = list;
  };
  const end = opts.endAt.toISOString();

  // 1. every materialised charge is finished or in dunning
  const states = await database.rows(
    sql`select state, count(*)::int as n from charges group by state order by state`,
  );
  const chargeStates = Object.fromEntries(states.map((r) => [String(r.state), num(r.n)]));
  // A paused mandate holds its waiting charges until it is resumed (dunning's final action can
  // pause one): those are held, not unfinished. Anything in flight must be finished regardless.
  for (const r of await database.rows(
    sql`select c.id, c.mandate_id, c.cycle, c.state from charges c join mandates m on m.id = c.mandate_id
         where c.state in (${sql.join(
           UNFINISHED.map((s) => sql`${s}`),
           sql`, `,
         )}) and not (m.status = 'paused' and c.state in ('pending', 'retry_scheduled'))`,
  )) {
    flag('unfinishedCharges', `charge ${r.id} (mandate ${r.mandate_id} cycle ${r.cycle}) is ${r.state}`);
  }
  for (const r of await database.rows(
    sql`select c.id, c.next_attempt_at from charges c join mandates m on m.id = c.mandate_id
         where c.state = 'retry_scheduled' and c.next_attempt_at <= ${end}::timestamptz and m.status <> 'paused'`,
  )) {
    flag('retryDueButNotAttempted', `charge ${r.id} retry was due at ${String(r.next_attempt_at)}`);
  }

  // 2. every mandate's cycles up to the end exist, once each
  for (const r of await database.rows(
    sql`select id, next_due_at from mandates where status = 'active' and next_due_at <= ${end}::timestamptz`,
  )) {
    flag('cyclesNotMaterialised', `mandate ${r.id} still due at ${String(r.next_due_at)}`);
  }
  for (const r of await database.rows(sql`select m.id, m.next_cycle, count(c.id)::int as n, coalesce(max(c.cycle), -1)::int as top
      from mandates m left join charges c on c.mandate_id = m.id group by m.id
      having count(c.id) <> m.next_cycle or coalesce(max(c.cycle), -1) <> m.next_cycle - 1`)) {
    flag('cycleGaps', `mandate ${r.id}: next_cycle ${r.next_cycle}, ${r.n} charges, highest cycle ${r.top}`);
  }

  // 3. the gateway's view: one authorization per (mandate, cycle), each known to rebill and settled
  const authorized = ledger.filter((e) => e.op === 'authorize' && e.outcome === 'authorized');
  const byCycle = new Map<string, LedgerEntry[]>();
  for (const e of authorized) {
    const parts = (e.transactionReference ?? '').split('-');
    if (parts[0] !== opts.prefix) continue;
    const key = `${parts[1]}-${parts[2]}`;
    const list = byCycle.get(key) ?? [];
    list.push(e);
    byCycle.set(key, list);
  }
  for (const [key, list] of byCycle) {
    if (list.length > 1)
      flag(
        'duplicateAuthorizations',
        `mandate-cycle ${key}: ${list.map((e) => e.transactionReference).join(', ')}`,
      );
  }
  // 3b. every v7 charge carried its card's FIRST scheme reference, byte for byte
  const firstReference = new Map<string, string | null>();
  for (const r of await database.rows(sql`select m.id, cr.scheme_reference from mandates m
      join credentials cr on cr.id = m.credential_id where cr.api = 'v7'`)) {
    firstReference.set(String(r.id), r.scheme_reference === null ? null : String(r.scheme_reference));
  }
  const v7Sent = ledger.filter((e) => e.op === 'authorize' && e.api === 'v7' && e.transactionReference);
  for (const e of v7Sent) {
    const mandate = e.transactionReference!.split('-')[1]!;
    const want = firstReference.get(mandate);
    if (want === undefined || want === null || e.schemeReference !== want)
      flag(
        'v7WithoutFirstSchemeReference',
        `${e.transactionReference}: sent ${JSON.stringify(e.schemeReference)}`,
      );
  }
  const known = new Map<string, { state: string; chargeState: string; authorizedAttempt: boolean }>();
  for (const r of await database.rows(sql`select a.transaction_reference, a.state, c.state as charge_state,
      (c.authorized_attempt_id = a.id) as is_authorized_attempt
      from attempts a join charges c on c.id = a.charge_id`)) {
    known.set(String(r.transaction_reference), {
      state: String(r.state),
      chargeState: String(r.charge_state),
      authorizedAttempt: r.is_authorized_attempt === true,
    });
  }
  const settled = new Set(
    ledger.filter((e) => e.op === 'settle' && e.outcome === 'accepted').map((e) => e.paymentId),
  );
  for (const e of authorized) {
    const k = known.get(e.transactionReference ?? '');
    if (k?.state !== 'authorized' || !k.authorizedAttempt) {
      flag(
        'authorizedAtGatewayUnknownToRebill',
        `${e.transactionReference} is ${k ? `${k.state}, charge ${k.chargeState}` : 'not recorded'}`,
      );
    }
    if (!settled.has(e.paymentId)) {
      flag('authorizedButUnsettled', `${e.transactionReference}, charge ${k?.chargeState ?? '?'}`);
    }
  }

  // 4. credentials and the newest link of their chain. Rebill can only know a link it was
  // given: the newest is in the authorization's answer, and Worldpay's query does not return
  // it. So a credential must be on the newest link rebill stored for its chain (a violation
  // otherwise), and is counted apart when the gateway's newest link was in an answer that never
  // arrived (lost, timed out, or the worker died before committing it).
  const stored = new Map<string, number>();
  for (const r of await database.rows(
    sql`select href from links where rel = 'payments:recurringAuthorize' and credential_id is not null`,
  )) {
    const pos = linkPosition(String(r.href));
    if (pos && (stored.get(pos.chainId) ?? 0) < pos.n) stored.set(pos.chainId, pos.n);
  }
  const gatewayNewest = new Map<string, number>();
  for (const e of authorized)
    if (e.chainId) gatewayNewest.set(e.chainId, (gatewayNewest.get(e.chainId) ?? 1) + 1);
  // an answer that did arrive must have left its new link stored (or the attempt was recovered
  // by query after the worker died between the answer and the commit)
  const attemptLinks = new Map<string, { recurring: boolean; recovery: boolean }>();
  for (const r of await database.rows(sql`select a.transaction_reference,
      exists (select 1 from links l where l.attempt_id = a.id and l.rel = 'payments:recurringAuthorize') as recurring,
      exists (select 1 from audit_log al where al.entity_type = 'charge' and al.entity_id = a.charge_id
                 and al.reason like 'attempt ' || a.transaction_reference || ' authorized (recovered by query)%') as recovery
      from attempts a where a.links is not null`)) {
    attemptLinks.set(String(r.transaction_reference), {
      recurring: r.recurring === true,
      recovery: r.recovery === true,
    });
  }
  for (const e of authorized) {
    const ref = e.transactionReference ?? '';
    // A v7 charge has no chain: no recurring link to store.
    if (e.responseLost || opts.slowReferences.has(ref) || e.api === 'v7') continue;
    const l = attemptLinks.get(ref);
    if (!l || (!l.recurring && !l.recovery))
      flag('newLinkReceivedButNotStored', `${ref}: answered intact, no recurring link stored`);
  }
  let credentials = 0;
  let onGatewayNewest = 0;
  let behindGatewayNewest = 0;
  for (const r of await database.rows(sql`select cr.id, l.href from credentials cr join links l on l.id = cr.current_link_id
      where cr.instrument_type = 'link'`)) {
    credentials++;
    const pos = linkPosition(String(r.href));
    if (!pos) continue;
    const newest = stored.get(pos.chainId) ?? 1;
    if (pos.n < newest)
      flag(
        'credentialsBehindNewestStoredLink',
        `credential ${r.id} on link ${pos.n} of ${pos.chainId}, rebill stored link ${newest}`,
      );
    if (pos.n === (gatewayNewest.get(pos.chainId) ?? 1)) onGatewayNewest++;
    else behindGatewayNewest++;
  }

  // 5. the card retry ledger, from what reached the gateway, in business time
  const reached = new Set(
    ledger
      .filter((e) => e.op === 'authorize' && (e.outcome === 'authorized' || e.outcome === 'refused'))
      .map((e) => e.transactionReference),
  );
  const attempts = (
    await database.rows(sql`select a.id, a.charge_id, a.credential_id, a.attempt_no, a.transaction_reference,
        a.state, a.refusal_code, a.advice_code, a.attempted_at, a.sent_at, a.completed_at
      from attempts a order by a.credential_id, a.attempted_at, a.id`)
  )
    .map((r) => ({
      id: num(r.id),
      chargeId: num(r.charge_id),
      credentialId: num(r.credential_id),
      attemptNo: num(r.attempt_no),
      reference: String(r.transaction_reference),
      state: String(r.state),
      code: str(r.refusal_code),
      advice: str(r.advice_code),
      at: date(r.attempted_at),
      sentAt: date(r.sent_at),
      completedAt: r.completed_at === null ? null : date(r.completed_at),
    }))
    .filter((a) => reached.has(a.reference));
  const byCredential = new Map<number, typeof attempts>();
  for (const a of attempts) {
    const list = byCredential.get(a.credentialId) ?? [];
    list.push(a);
    byCredential.set(a.credentialId, list);
  }
  let maxReattempts = 0;
  for (const [credentialId, list] of byCredential) {
    const re = list.filter((a) => a.attemptNo > 1);
    for (let i = 0, j = 0; i < re.length; i++) {
      while (re[i]!.at.getTime() - re[j]!.at.getTime() >= 30 * DAY) j++;
      maxReattempts = Math.max(maxReattempts, i - j + 1);
      if (i - j + 1 === 16)
        flag(
          'reattemptsOver15In30Days',
          `credential ${credentialId}: 16th reattempt at ${re[i]!.at.toISOString()}`,
        );
    }
    for (const a of list) {
      if (a.state !== 'refused' || a.code === null) continue;
      const c = classifyRefusal(a.code, a.advice);
      if (c.blocksCredential && a.completedAt) {
        for (const b of list) {
          if (b.sentAt > a.completedAt)
            flag(
              'attemptsAfterBlockingRefusal',
              `credential ${credentialId}: ${b.reference} sent after ${a.reference} refused ${a.code}/${a.advice ?? '-'}`,
            );
        }
      }
      if (c.minWaitMs > 0) {
        const next = list.find((b) => b.chargeId === a.chargeId && b.attemptNo === a.attemptNo + 1);
        if (next && next.at.getTime() - a.at.getTime() < c.minWaitMs)
          flag(
            'retriesBeforeAdviceWait',
            `${next.reference} ${((next.at.getTime() - a.at.getTime()) / 3_600_000).toFixed(1)} h after ${a.reference} refused ${a.code}/${a.advice}`,
          );
      }
    }
  }

  const counts = {
    mandates: num((await database.rows(sql`select count(*)::int as n from mandates`))[0]?.n),
    charges: Object.values(chargeStates).reduce((a, b) => a + b, 0),
    attemptsInDatabase: num((await database.rows(sql`select count(*)::int as n from attempts`))[0]?.n),
    ledgerEntries: ledger.length,
    gatewayAuthorizations: authorized.length,
    v7Authorizations: authorized.filter((e) => e.api === 'v7').length,
    gatewayRefusals: ledger.filter((e) => e.op === 'authorize' && e.outcome === 'refused').length,
    gatewaySettles: settled.size,
    lostResponses: ledger.filter((e) => e.responseLost).length,
    duplicateReferencesRejected: ledger.filter((e) => e.outcome === 'duplicate').length,
    staleLinkUses: ledger.filter((e) => e.op === 'authorize' && e.stale).length,
    linkCredentials: credentials,
    credentialsOnGatewayNewestLink: onGatewayNewest,
    credentialsBehindGatewayNewestLinkByLostAnswer: behindGatewayNewest,
    maxReattemptsIn30DaysOnOneCard: maxReattempts,
  };
  return { counts, chargeStates, violations, examples };
}
