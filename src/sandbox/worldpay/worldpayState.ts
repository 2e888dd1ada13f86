import { randomUUID } from 'node:crypto';
import { paymentLinkData, recurringLinkData } from './linkData.js';
import {
  ACTION_PATH,
  LAST_EVENT,
  type ManageOp,
  nextActions,
  type PaymentAmounts,
  type PaymentState,
  settlementCompletes,
  transition,
  WEBHOOK_TYPE,
} from './paymentMachine.js';
import { magicNameOutcome, refusalDescription } from './refusals.js';
import type {
  LedgerEntry,
  LedgerOutcome,
  Outcome,
  SandboxOp,
  SandboxStats,
  ScriptOp,
  ScriptRule,
} from './types.js';
import {
  type AuthorizationRequest,
  MIGRATE_INSTRUMENTS,
  RECURRING_INSTRUMENTS,
  type ValidationError,
  validateAuthorization,
  validatePartial,
} from './validateBody.js';
import type { WebhookSender } from './webhookSender.js';

// The sandbox's whole memory: chains, payments, scripts, ledger. Everything is a Map keyed by
// the id or link a request carries, so a request costs a few lookups. HTTP lives in the routes;
// this module answers with a plain `SandboxReply` the routes write out.

export interface SandboxReply {
  status: number;
  body?: object;
  headers?: Record<string, string>;
  /** Hold the response this long (script `slow`); the payment is already committed. */
  delayMs?: number;
  /** Destroy the socket instead of answering (script `lost`); the payment is already committed. */
  lost?: boolean;
}

interface Chain {
  id: string;
  cardKey?: string;
  holderName?: string;
  latestN: number;
}

interface PaymentEvent {
  state: PaymentState;
  at: number;
}

interface Payment extends PaymentAmounts {
  id: string;
  linkData: string;
  transactionReference: string;
  entity: string;
  currency: string;
  chainId?: string;
  createdAt: number;
  events: PaymentEvent[];
  references: Set<string>;
  settleDueAt?: number;
  paypal?: boolean;
}

export interface WorldpayStateOptions {
  now: () => number;
  eventLagMs: number;
  settleAfterMs: number;
  /** Window after authorization in which a reversal cancels instead of refunding (Worldpay: 15 min). */
  reversalCancelWindowMs: number;
  /** Oldest ledger entries are dropped beyond this, so a long benchmark does not grow without bound. */
  ledgerLimit: number;
  webhook?: WebhookSender;
}

const CURIES = [{ name: 'payments', href: '/rels/payments/{rel}', templated: true }];
const RISK_FACTORS = [
  { risk: 'not_matched', type: 'cvc' },
  { risk: 'not_checked', detail: 'postcode', type: 'avs' },
  { risk: 'not_checked', detail: 'address', type: 'avs' },
];
const REFUSED_RISK_FACTORS = [
  { risk: 'not_supplied', type: 'cvc' },
  { risk: 'not_checked', detail: 'address', type: 'avs' },
  { risk: 'not_checked', detail: 'postcode', type: 'avs' },
  { risk: 'verificationFailed', type: 'riskProfile' },
];

export function notFound(): SandboxReply {
  return {
    status: 404,
    body: { errorName: 'endpointNotFound', message: 'Requested endpoint was not found.' },
  };
}

export function schemaError(errors: ValidationError[]): SandboxReply {
  return {
    status: 400,
    body: {
      errorName: 'bodyDoesNotMatchSchema',
      message: 'The json body provided does not match the expected schema',
      validationErrors: errors,
    },
  };
}

function errorReply(outcome: Extract<Outcome, { type: 'error' }>): SandboxReply {
  const errorName =
    outcome.errorName ??
    (outcome.status === 503
      ? 'serviceUnavailable'
      : outcome.status === 429
        ? 'tooManyRequests'
        : 'internalErrorOccurred');
  const reply: SandboxReply = {
    status: outcome.status,
    body: { errorName, message: 'The sandbox was scripted to fail this request.' },
  };
  if (outcome.retryAfterSeconds !== undefined)
    reply.headers = { 'retry-after': String(outcome.retryAfterSeconds) };
  return reply;
}

/** Random digits for authorization codes and scheme references (not secrets: Math.random is enough). */
function digits(n: number): string {
  let out = String(1 + Math.floor(Math.random() * 9));
  for (let i = 1; i < n; i++) out += String(Math.floor(Math.random() * 10));
  return out;
}

export function createWorldpayState(options: WorldpayStateOptions) {
  const { now } = options;
  let chains = new Map<string, Chain>();
  let chainsByCard = new Map<string, Chain>();
  let recurringLinks = new Map<string, { chainId: string; n: number }>();
  let paymentsByLink = new Map<string, Payment>();
  let paymentsByReference = new Map<string, Payment>();
  let scripts: ScriptRule[] = [];
  let ledger: LedgerEntry[] = [];
  let ledgerSeq = 0;
  let ids = 0;
  let counters = freshCounters();
  const settleTimers = new Set<NodeJS.Timeout>();

  function freshCounters() {
    return {
      requests: 0,
      staleLinkUses: 0,
      duplicateReferences: 0,
      throttled: 0,
      ops: {} as SandboxStats['ops'],
    };
  }

  function record(entry: Omit<LedgerEntry, 'seq' | 'at'>): void {
    const byOutcome = counters.ops[entry.op] ?? {};
    counters.ops[entry.op] = byOutcome;
    byOutcome[entry.outcome] = (byOutcome[entry.outcome] ?? 0) + 1;
    ledgerSeq += 1;
    ledger.push({ seq: ledgerSeq, ...entry, at: new Date(now()).toISOString() });
    // Trim in chunks of a tenth so the copy is amortised over many requests.
    if (ledger.length > options.ledgerLimit) ledger = ledger.slice(-Math.floor(options.ledgerLimit * 0.9));
  }

  function href(base: string, path: string): { href: string } {
    return { href: base + path };
  }

  function curies(base: string) {
    return [{ ...CURIES[0], href: base + CURIES[0]!.href }];
  }

  function newChain(cardKey: string | undefined, holderName: string | undefined): Chain {
    ids += 1;
    const chain: Chain = { id: `chain-${ids.toString(36)}`, cardKey, holderName, latestN: 0 };
    chains.set(chain.id, chain);
    if (cardKey) chainsByCard.set(cardKey, chain);
    return chain;
  }

  /** Issues the chain's next recurringAuthorize link; older links keep working but count as stale. */
  function rotate(chain: Chain): string {
    chain.latestN += 1;
    const linkData = recurringLinkData(chain.id, chain.latestN);
    recurringLinks.set(linkData, { chainId: chain.id, n: chain.latestN });
    return linkData;
  }

  function emit(p: Payment, state: PaymentState, at: number, reference?: string, amount?: number): void {
    p.events.push({ state, at });
    if (!options.webhook) return;
    const details: Record<string, unknown> = {
      classification: 'payment',
      transactionReference: p.transactionReference,
      type: WEBHOOK_TYPE[state],
      date: new Date(p.createdAt).toISOString().slice(0, 10),
      merchant: { entity: p.entity },
      amount: { value: amount ?? p.authorizedAmount, currencyCode: p.currency },
    };
    if (reference !== undefined) details.reference = reference;
    options.webhook.send({
      eventId: randomUUID(),
      eventTimestamp: new Date(at).toISOString(),
      eventDetails: details,
    });
  }

  /** Lazily completes settlement once settleAfterMs has passed (timers only drive webhooks). */
  function advance(p: Payment): void {
    if (p.state === 'sentForSettlement' && p.settleDueAt !== undefined && p.settleDueAt <= now()) {
      if (settlementCompletes(p)) emit(p, 'settled', p.settleDueAt);
    }
  }

  function scheduleSettlement(p: Payment): void {
    if (p.settleDueAt === undefined) p.settleDueAt = now() + options.settleAfterMs;
    if (options.settleAfterMs === 0) {
      advance(p);
      return;
    }
    if (!options.webhook) return;
    const timer = setTimeout(() => {
      settleTimers.delete(timer);
      advance(p);
    }, options.settleAfterMs);
    settleTimers.add(timer);
  }

  /** Takes the next scripted outcome: by transaction reference first, then chain, then any. */
  function nextScripted(op: ScriptOp, transactionReference?: string, chainId?: string): Outcome | undefined {
    if (scripts.length === 0) return undefined;
    const opOf = (rule: ScriptRule) => rule.match.op ?? 'authorize';
    const pick = (test: (rule: ScriptRule) => boolean): Outcome | undefined => {
      const index = scripts.findIndex((rule) => opOf(rule) === op && rule.outcomes.length > 0 && test(rule));
      if (index < 0) return undefined;
      const rule = scripts[index]!;
      const outcome = rule.outcomes.shift();
      if (rule.outcomes.length === 0) scripts.splice(index, 1);
      return outcome;
    };
    return (
      (transactionReference !== undefined
        ? pick((r) => r.match.transactionReference === transactionReference)
        : undefined) ??
      (chainId !== undefined ? pick((r) => r.match.chainId === chainId) : undefined) ??
      pick((r) => r.match.any === true)
    );
  }

  /** Unwraps `slow` into a delay around the outcome it wraps. */
  function unwrap(outcome: Outcome | undefined): { outcome: Outcome | undefined; delayMs: number } {
    let delayMs = 0;
    let current = outcome;
    while (current?.type === 'slow') {
      delayMs += current.ms;
      current = current.next;
    }
    return { outcome: current, delayMs };
  }

  function visibleEvent(p: Payment): PaymentEvent | undefined {
    const cutoff = now() - options.eventLagMs;
    for (let i = p.events.length - 1; i >= 0; i--) {
      const event = p.events[i]!;
      if (event.at <= cutoff) return event;
    }
    return undefined;
  }

  function actionLinks(base: string, p: Payment, withEvents: boolean): Record<string, unknown> {
    const links: Record<string, unknown> = {};
    for (const rel of nextActions(p)) links[rel] = href(base, ACTION_PATH[rel] + p.linkData);
    if (withEvents) links['payments:events'] = href(base, ACTION_PATH['payments:events'] + p.linkData);
    links.curies = curies(base);
    return links;
  }

  function authorize(
    base: string,
    op: 'authorize' | 'migrate',
    body: unknown,
    linkData: string | undefined,
  ): SandboxReply {
    let chain: Chain | undefined;
    let stale = false;
    if (op === 'authorize') {
      const link = recurringLinks.get(linkData!);
      if (!link) return notFound();
      chain = chains.get(link.chainId)!;
      stale = link.n !== chain.latestN;
    }
    const checked = validateAuthorization(
      body,
      op === 'migrate' ? MIGRATE_INSTRUMENTS : RECURRING_INSTRUMENTS,
      { instrumentOptional: op === 'authorize' },
    );
    if (!checked.ok) {
      record({ op, chainId: chain?.id, linkUsed: linkData, outcome: 'rejected', httpStatus: 400 });
      return schemaError(checked.errors);
    }
    const req = checked.request;
    const base_entry = {
      op,
      transactionReference: req.transactionReference,
      linkUsed: linkData,
      amount: req.amount,
      currency: req.currency,
    };
    const referenceKey = `${req.entity}\u0000${req.transactionReference}`;
    if (paymentsByReference.has(referenceKey)) {
      counters.duplicateReferences += 1;
      record({ ...base_entry, chainId: chain?.id, outcome: 'duplicate', httpStatus: 400 });
      // The card API answers `duplicateTransactionReference`; the APM API names the same
      // condition `transactionReferenceIsADuplicate`.
      return {
        status: 400,
        body: {
          errorName: 'duplicateTransactionReference',
          message: 'Transaction reference has already been used for this entity.',
        },
      };
    }
    if (op === 'migrate') {
      chain = (req.cardKey && chainsByCard.get(req.cardKey)) || newChain(req.cardKey, req.cardHolderName);
      if (req.cardHolderName !== undefined) chain.holderName = req.cardHolderName;
    }
    const holderName = req.cardHolderName ?? chain!.holderName;
    const scripted = unwrap(nextScripted('authorize', req.transactionReference, chain!.id));
    const decided = scripted.outcome ?? magicNameOutcome(holderName) ?? { type: 'authorize' as const };
    if (decided.type === 'error') {
      record({ ...base_entry, chainId: chain!.id, stale, outcome: 'error', httpStatus: decided.status });
      return { ...errorReply(decided), delayMs: scripted.delayMs };
    }
    if (stale) counters.staleLinkUses += 1;
    const lost = decided.type === 'lost';
    const reply =
      decided.type === 'refuse'
        ? commitRefusal(req, chain!, decided, base_entry, stale, lost)
        : commitAuthorization(base, req, chain!, base_entry, stale, lost);
    reply.delayMs = scripted.delayMs;
    reply.lost = lost;
    return reply;
  }

  function newPayment(req: AuthorizationRequest, chain: Chain, state: PaymentState): Payment {
    ids += 1;
    const id = `pay-${ids.toString(36)}`;
    const p: Payment = {
      id,
      linkData: paymentLinkData(id),
      transactionReference: req.transactionReference,
      entity: req.entity,
      currency: req.currency,
      chainId: chain.id,
      createdAt: now(),
      events: [],
      references: new Set(),
      state,
      authorizedAmount: state === 'authorized' ? req.amount : 0,
      settledAmount: 0,
      releasedAmount: 0,
      refundedAmount: 0,
    };
    paymentsByLink.set(p.linkData, p);
    paymentsByReference.set(`${req.entity}\u0000${req.transactionReference}`, p);
    emit(p, state, p.createdAt);
    return p;
  }

  function commitAuthorization(
    base: string,
    req: AuthorizationRequest,
    chain: Chain,
    entry: Omit<LedgerEntry, 'seq' | 'at' | 'outcome' | 'httpStatus'>,
    stale: boolean,
    lost: boolean,
  ): SandboxReply {
    const p = newPayment(req, chain, 'authorized');
    const next = rotate(chain);
    record({
      ...entry,
      paymentId: p.id,
      chainId: chain.id,
      stale,
      outcome: 'authorized',
      httpStatus: 201,
      responseLost: lost || undefined,
    });
    const links: Record<string, unknown> = {
      'payments:cancel': href(base, ACTION_PATH['payments:cancel'] + p.linkData),
      'payments:settle': href(base, ACTION_PATH['payments:settle'] + p.linkData),
      'payments:partialSettle': href(base, ACTION_PATH['payments:partialSettle'] + p.linkData),
      'payments:events': href(base, ACTION_PATH['payments:events'] + p.linkData),
      curies: curies(base),
      'payments:recurringAuthorize': href(base, '/payments/authorizations/recurring/' + next),
    };
    const body: Record<string, unknown> = {
      outcome: 'authorized',
      riskFactors: RISK_FACTORS,
      issuer: { authorizationCode: digits(6) },
      scheme: { reference: digits(10) },
    };
    if (req.instrumentType === 'card/networkToken+applepay') {
      body.paymentInstrument = {
        type: 'card/network',
        card: {
          paymentAccountReference: `Q1HJZ28RKA1EBL470G9${chain.id.toUpperCase().replace(/[^A-Z0-9]/g, '')}`,
        },
      };
    }
    body._links = links;
    return { status: 201, body };
  }

  function commitRefusal(
    req: AuthorizationRequest,
    chain: Chain,
    outcome: Extract<Outcome, { type: 'refuse' }>,
    entry: Omit<LedgerEntry, 'seq' | 'at' | 'outcome' | 'httpStatus'>,
    stale: boolean,
    lost: boolean,
  ): SandboxReply {
    const p = newPayment(req, chain, 'refused');
    record({
      ...entry,
      paymentId: p.id,
      chainId: chain.id,
      stale,
      outcome: 'refused',
      code: outcome.code,
      httpStatus: 201,
      responseLost: lost || undefined,
    });
    const description = outcome.description ?? refusalDescription(outcome.code);
    const body: Record<string, unknown> =
      outcome.spelling === 'v7'
        ? { outcome: 'refused', refusalDescription: description, refusalCode: outcome.code }
        : { outcome: 'refused', description, code: outcome.code };
    if (outcome.adviceCode !== undefined) {
      body[outcome.spelling === 'v7' ? 'advice' : 'refusalAdvice'] = { code: outcome.adviceCode };
    }
    body.riskFactors = REFUSED_RISK_FACTORS;
    return { status: 201, body };
  }

  function manage(base: string, op: ManageOp, linkData: string, body: unknown): SandboxReply {
    const p = paymentsByLink.get(linkData);
    if (!p || p.paypal) return notFound();
    return manageResolved(base, op, p, body, false);
  }

  function manageResolved(
    base: string,
    op: ManageOp,
    p: Payment,
    body: unknown,
    paypal: boolean,
  ): SandboxReply {
    const entry: Omit<LedgerEntry, 'seq' | 'at' | 'outcome' | 'httpStatus'> = {
      op,
      transactionReference: p.transactionReference,
      paymentId: p.id,
      chainId: p.chainId,
    };
    let amount: number | undefined;
    if (op === 'partialSettle' || op === 'partialRefund') {
      const checked = validatePartial(body);
      if (!checked.ok) {
        record({ ...entry, outcome: 'rejected', httpStatus: 400 });
        return schemaError(checked.errors);
      }
      const { reference, currency } = checked.request;
      amount = checked.request.amount;
      Object.assign(entry, { reference, amount, currency });
      const referenceKey = `${op}:${reference}`;
      if (p.references.has(referenceKey)) {
        record({ ...entry, outcome: 'duplicate', httpStatus: 400 });
        return {
          status: 400,
          body: {
            errorName: 'duplicateReference',
            message: `Reference already used for a ${op} of this payment.`,
          },
        };
      }
      // Worldpay itself does not check these; the sandbox does, so a client that gets them
      // wrong fails loudly in tests instead of quietly in production.
      if (currency !== p.currency) {
        record({ ...entry, outcome: 'rejected', httpStatus: 400 });
        return {
          status: 400,
          body: { errorName: 'currencyMismatch', message: 'Currency differs from the authorized currency.' },
        };
      }
    }
    const scripted = unwrap(nextScripted(op, p.transactionReference, p.chainId));
    if (scripted.outcome?.type === 'error') {
      record({ ...entry, outcome: 'error', httpStatus: scripted.outcome.status });
      return { ...errorReply(scripted.outcome), delayMs: scripted.delayMs };
    }
    advance(p);
    const reversalIsCancel = op === 'reversal' && now() - p.createdAt < options.reversalCancelWindowMs;
    const result = transition(p, op, amount, reversalIsCancel);
    if (!result.ok) {
      const status = result.reason === 'amountExceedsRemaining' ? 400 : 409;
      record({ ...entry, outcome: 'invalidState', httpStatus: status });
      return {
        status,
        body: {
          errorName: result.reason,
          message:
            result.reason === 'amountExceedsRemaining'
              ? 'Amount is more than what is left to settle or refund.'
              : `A ${op} is not allowed while the payment is ${p.state}.`,
        },
      };
    }
    if (entry.reference !== undefined) p.references.add(`${op}:${entry.reference}`);
    p.state = result.next;
    if (result.event) emit(p, result.event, now(), entry.reference, amount);
    if (result.event === 'sentForSettlement') scheduleSettlement(p);
    const lost = scripted.outcome?.type === 'lost';
    record({ ...entry, outcome: 'accepted', httpStatus: 202, responseLost: lost || undefined });
    const replyBody = paypal ? { _links: paypalLinks(base, p) } : { _links: actionLinks(base, p, true) };
    return { status: 202, body: replyBody, delayMs: scripted.delayMs, lost };
  }

  function eventsReply(base: string, p: Payment | undefined): SandboxReply {
    if (!p) return notFound();
    advance(p);
    const event = visibleEvent(p);
    if (!event) return notFound();
    if (p.paypal) return { status: 200, body: { lastEvent: event.state, _links: paypalLinks(base, p) } };
    return { status: 200, body: { lastEvent: LAST_EVENT[event.state], _links: actionLinks(base, p, false) } };
  }

  // PayPal actions family (seed 001): enough to refund a PayPal payment created through the
  // control API. lastEvent uses the APM spelling (`sentForSettlement`, `sentForRefund`).
  const PAYPAL = '/payments/alternative/action/paypal/';

  function paypalLinks(base: string, p: Payment): Record<string, unknown> {
    const links: Record<string, unknown> = {};
    const refundable = p.settledAmount - p.refundedAmount > 0;
    if (refundable && p.state === 'sentForSettlement') {
      links['action:refund'] = href(base, PAYPAL + 'refunds/full/' + p.linkData);
    }
    if (refundable) links['action:partialRefund'] = href(base, PAYPAL + 'refunds/partials/' + p.linkData);
    links['action:events'] = href(base, PAYPAL + 'events/' + p.linkData);
    links.curies = [{ name: 'action', href: base + '/rels' + PAYPAL + '{rel}', templated: true }];
    return links;
  }

  return {
    authorize,
    manage,
    events(base: string, linkData: string): SandboxReply {
      const p = paymentsByLink.get(linkData);
      return eventsReply(base, p?.paypal ? undefined : p);
    },
    recover(
      base: string,
      transactionReference: string | undefined,
      entity: string | undefined,
    ): SandboxReply {
      if (!transactionReference || !entity) return notFound();
      const p = paymentsByReference.get(`${entity}\u0000${transactionReference}`);
      return eventsReply(base, p?.paypal ? undefined : p);
    },
    paypalEvents(base: string, linkData: string): SandboxReply {
      const p = paymentsByLink.get(linkData);
      return eventsReply(base, p?.paypal ? p : undefined);
    },
    paypalRefund(
      base: string,
      op: 'refund' | 'partialRefund',
      linkData: string,
      body: unknown,
    ): SandboxReply {
      const p = paymentsByLink.get(linkData);
      if (!p?.paypal) return notFound();
      if (op === 'refund' && p.state !== 'sentForSettlement') {
        return {
          status: 409,
          body: { errorName: 'actionNotAllowed', message: 'Refund only after sentForSettlement.' },
        };
      }
      return manageResolved(base, op, p, body, true);
    },
    /** Creates a PayPal payment already sent for settlement; returns its action links. */
    createPaypal(
      base: string,
      input: { transactionReference?: string; entity?: string; amount?: number; currency?: string },
    ) {
      ids += 1;
      const id = `paypal-${ids.toString(36)}`;
      const amount = input.amount ?? 1000;
      const p: Payment = {
        id,
        linkData: paymentLinkData(id),
        transactionReference: input.transactionReference ?? id,
        entity: input.entity ?? 'default',
        currency: input.currency ?? 'GBP',
        createdAt: now(),
        events: [{ state: 'sentForSettlement', at: now() }],
        references: new Set(),
        state: 'sentForSettlement',
        authorizedAmount: amount,
        settledAmount: amount,
        releasedAmount: 0,
        refundedAmount: 0,
        paypal: true,
      };
      paymentsByLink.set(p.linkData, p);
      return { paymentId: id, _links: paypalLinks(base, p) };
    },
    /** Starts a chain as a customer-initiated verification would; returns its first link. */
    verify(base: string, input: { cardNumber?: string; cardHolderName?: string }) {
      const cardKey = input.cardNumber ? `card/plain:${input.cardNumber}` : undefined;
      const chain = newChain(cardKey, input.cardHolderName);
      return { chainId: chain.id, href: base + '/payments/authorizations/recurring/' + rotate(chain) };
    },
    script(rule: ScriptRule): void {
      scripts.push({ match: { ...rule.match }, outcomes: [...rule.outcomes] });
    },
    countRequest(): void {
      counters.requests += 1;
    },
    countThrottled(): void {
      counters.throttled += 1;
    },
    /** Ledger entries with seq > since (all kept entries by default). */
    ledger(since = 0): LedgerEntry[] {
      if (since <= 0) return ledger.slice();
      const first = ledger.findIndex((entry) => entry.seq > since);
      return first < 0 ? [] : ledger.slice(first);
    },
    stats(webhooks: SandboxStats['webhooks']): SandboxStats {
      return {
        requests: counters.requests,
        ops: structuredClone(counters.ops),
        staleLinkUses: counters.staleLinkUses,
        duplicateReferences: counters.duplicateReferences,
        throttled: counters.throttled,
        webhooks,
      };
    },
    reset(): void {
      for (const timer of settleTimers) clearTimeout(timer);
      settleTimers.clear();
      chains = new Map();
      chainsByCard = new Map();
      recurringLinks = new Map();
      paymentsByLink = new Map();
      paymentsByReference = new Map();
      scripts = [];
      ledger = [];
      ledgerSeq = 0;
      counters = freshCounters();
    },
    close(): void {
      for (const timer of settleTimers) clearTimeout(timer);
      settleTimers.clear();
    },
  };
}

export type WorldpayState = ReturnType<typeof createWorldpayState>;
export type { LedgerOutcome, SandboxOp };
