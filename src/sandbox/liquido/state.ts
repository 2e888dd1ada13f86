import { randomUUID } from 'node:crypto';
import type { LiquidoCardInfo, LiquidoPayment } from '../../gateways/liquido/wire.ts';
import type {
  LiquidoLedger,
  LiquidoLedgerEntry,
  LiquidoLedgerOutcome,
  LiquidoOp,
  LiquidoOutcome,
  LiquidoScriptRule,
} from './types.ts';

/**
 * The Liquido sandbox's memory: issued tokens, the card vault, payments by idempotencyKey,
 * scripted outcomes and the ledger. Plain maps, so each request costs O(1). HTTP concerns
 * (headers, sockets, delays) stay in plugin.ts.
 */

export interface Answer {
  status: number;
  body: unknown;
}

type TransferStatus = 'AUTHORIZED' | 'SETTLED' | 'CANCELLED' | 'FAILED' | 'IN_PROGRESS';

/** The one transition table: which states an action may start from, and where it leads. */
const transitions = {
  capture: { from: ['AUTHORIZED'], to: 'SETTLED' },
  cancel: { from: ['AUTHORIZED'], to: 'CANCELLED' },
} as const satisfies Record<string, { from: readonly TransferStatus[]; to: TransferStatus }>;

const ledgerOutcome = {
  AUTHORIZED: 'authorized',
  SETTLED: 'settled',
  CANCELLED: 'cancelled',
  FAILED: 'failed',
  IN_PROGRESS: 'inProgress',
} as const satisfies Record<TransferStatus, LiquidoLedgerOutcome>;

interface StoredPayment {
  wire: LiquidoPayment;
  /** What must match for a replay under the same idempotencyKey to be "the same request". */
  fingerprint: string;
}

export interface LiquidoState {
  issueToken(clientId: string, clientSecret: string, grantType: string | undefined): Answer;
  /** 'ok', or why the bearer token is refused. */
  checkToken(token: string | undefined): 'ok' | 'missing' | 'unknown' | 'expired';
  expireTokens(): void;
  addCard(input: { cardHolderName?: string; last4?: string }): { cardId: string };
  script(rule: LiquidoScriptRule): void;
  /** The scripted outcome for this request, if a rule matches (consumes it). */
  takeOutcome(
    op: Exclude<LiquidoOp, 'token'>,
    key: string | undefined,
    cardId: string | undefined,
  ): LiquidoOutcome | undefined;
  charge(body: unknown, outcome: LiquidoOutcome | undefined): Answer;
  act(op: 'capture' | 'cancel', key: string, body: unknown, outcome: LiquidoOutcome | undefined): Answer;
  status(key: string): Answer;
  /** For requests refused before reaching the payment logic (auth, scripted errors). */
  record(entry: Omit<LiquidoLedgerEntry, 'seq' | 'at'>): void;
  ledger(): LiquidoLedger;
  reset(): void;
}

export function createLiquidoState(opts: {
  clientId: string;
  clientSecret: string;
  tokenTtlSeconds: number;
  now: () => number;
}): LiquidoState {
  let tokens = new Map<string, number>();
  let cards = new Map<string, LiquidoCardInfo>();
  let payments = new Map<string, StoredPayment>();
  let rules: LiquidoScriptRule[] = [];
  let entries: LiquidoLedgerEntry[] = [];
  let tokensIssued = 0;

  const iso = () => new Date(opts.now()).toISOString();
  function record(entry: Omit<LiquidoLedgerEntry, 'seq' | 'at'>): void {
    entries.push({ seq: entries.length + 1, ...entry, at: iso() });
  }
  const withheld = (o: LiquidoOutcome | undefined) =>
    o?.type === 'lost' || o?.type === 'slow' ? { responseWithheld: o.type } : {};

  function reject(
    op: LiquidoOp,
    status: number,
    error: string,
    message: string,
    extra: Partial<LiquidoLedgerEntry> = {},
  ): Answer {
    const outcome =
      status === 409
        ? 'conflict'
        : status === 404
          ? 'notFound'
          : error === 'invalid_state'
            ? 'invalidState'
            : 'rejected';
    record({ op, outcome, httpStatus: status, ...extra });
    return { status, body: { transferStatusCode: status, error, message } };
  }

  /** Liquido's time format, e.g. "2022-03-01 17:53:18 GMT-08:00" (the sandbox speaks UTC). */
  function liquidoTime(): string {
    return `${new Date(opts.now()).toISOString().slice(0, 19).replace('T', ' ')} GMT+00:00`;
  }

  function cardInfoFor(cardId: string): LiquidoCardInfo | undefined {
    const known = cards.get(cardId);
    if (known !== undefined) return known;
    // Magic ids need no vaulting: FAIL_INSUFFICIENT_FUNDS fails with "Insufficient funds".
    if (cardId.startsWith('FAIL_')) return defaultCardInfo({ cardHolderName: cardId });
    return undefined;
  }

  function failureOf(card: LiquidoCardInfo): string | undefined {
    const name = card.cardHolderName ?? '';
    if (!name.startsWith('FAIL_')) return undefined;
    const words = name.slice(5).toLowerCase().replace(/_+/g, ' ').trim();
    return words === '' ? 'Declined' : words[0]!.toUpperCase() + words.slice(1);
  }

  return {
    issueToken(clientId, clientSecret, grantType) {
      if (grantType !== 'client_credentials') {
        record({ op: 'token', outcome: 'rejected', httpStatus: 400 });
        return { status: 400, body: { error: 'unsupported_grant_type' } };
      }
      if (clientId !== opts.clientId || clientSecret !== opts.clientSecret) {
        record({ op: 'token', outcome: 'badCredentials', httpStatus: 401 });
        return { status: 401, body: { error: 'invalid_client', error_description: 'Bad credentials' } };
      }
      const token = randomUUID();
      tokens.set(token, opts.now() + opts.tokenTtlSeconds * 1000);
      tokensIssued++;
      record({ op: 'token', outcome: 'issued', httpStatus: 200 });
      return {
        status: 200,
        body: { access_token: token, expires_in: opts.tokenTtlSeconds, token_type: 'Bearer' },
      };
    },

    checkToken(token) {
      if (token === undefined) return 'missing';
      const expiresAt = tokens.get(token);
      if (expiresAt === undefined) return 'unknown';
      return opts.now() < expiresAt ? 'ok' : 'expired';
    },

    expireTokens() {
      for (const token of tokens.keys()) tokens.set(token, 0);
    },

    addCard(input) {
      const cardId = randomUUID();
      cards.set(cardId, defaultCardInfo(input));
      return { cardId };
    },

    script(rule) {
      rules.push({ match: { ...rule.match }, outcomes: [...rule.outcomes] });
    },

    takeOutcome(op, key, cardId) {
      const i = rules.findIndex(({ match: m }) => {
        if ((m.op ?? 'authorize') !== op) return false;
        if (m.idempotencyKey !== undefined) return m.idempotencyKey === key;
        if (m.cardId !== undefined) return m.cardId === cardId;
        return m.any === true;
      });
      const rule = rules[i];
      if (rule === undefined) return undefined;
      const outcome = rule.outcomes.shift();
      if (rule.outcomes.length === 0) rules.splice(i, 1);
      return outcome;
    },

    charge(raw, outcome) {
      const b = (raw ?? {}) as Record<string, unknown>;
      const key = typeof b.idempotencyKey === 'string' ? b.idempotencyKey : '';
      const problem = chargeProblem(b);
      if (problem !== undefined)
        return reject('authorize', 400, 'bad_request', problem, { idempotencyKey: key });
      const cardId = b.cardId as string;
      const amount = b.amount as number;
      const currency = b.currency as string;
      const fingerprint = JSON.stringify([
        amount,
        currency,
        b.country,
        cardId,
        b.capture,
        b.subMerchantId ?? null,
      ]);
      const existing = payments.get(key);
      if (existing !== undefined) {
        if (existing.fingerprint !== fingerprint) {
          return reject(
            'authorize',
            409,
            'idempotency_conflict',
            'idempotencyKey was used with a different request',
            {
              idempotencyKey: key,
            },
          );
        }
        record({
          op: 'authorize',
          idempotencyKey: key,
          amount,
          currency,
          outcome: 'replayed',
          httpStatus: 200,
          ...withheld(outcome),
        });
        return { status: 200, body: existing.wire };
      }
      const card = cardInfoFor(cardId);
      if (card === undefined) {
        return reject('authorize', 400, 'bad_request', 'cardId is not in the vault', { idempotencyKey: key });
      }
      const failure = outcome?.type === 'fail' ? outcome.message : failureOf(card);
      const status: TransferStatus =
        failure !== undefined
          ? 'FAILED'
          : outcome?.type === 'pending'
            ? 'IN_PROGRESS'
            : b.capture === true
              ? 'SETTLED'
              : 'AUTHORIZED';
      const time = liquidoTime();
      const wire: LiquidoPayment = {
        transferStatusCode: 200,
        idempotencyKey: key,
        referenceId: randomUUID(),
        paymentMethod: 'CREDIT_CARD',
        amount,
        currency,
        finalAmount: amount,
        finalCurrency: currency,
        country: b.country as string,
        createTime: time,
        scheduledTime: time,
        transferDetails: { card: { cardInfo: card, cardId } },
        transferStatus: status,
        ...(failure !== undefined ? { transferErrorMsg: failure } : {}),
        description: typeof b.description === 'string' ? b.description : '',
        ...(typeof b.subMerchantId === 'string' ? { subMerchantId: b.subMerchantId } : {}),
      };
      payments.set(key, { wire, fingerprint });
      record({
        op: 'authorize',
        idempotencyKey: key,
        amount,
        currency,
        outcome: ledgerOutcome[status],
        httpStatus: 200,
        ...withheld(outcome),
      });
      return { status: 200, body: wire };
    },

    act(op, key, raw, outcome) {
      const stored = payments.get(key);
      if (stored === undefined)
        return reject(op, 404, 'not_found', 'no payment with this idempotencyKey', { idempotencyKey: key });
      const p = stored.wire;
      if (outcome?.type === 'fail')
        return reject(op, 400, 'bad_request', outcome.message, { idempotencyKey: key });
      const t = transitions[op];
      if (!(t.from as readonly string[]).includes(p.transferStatus)) {
        return reject(op, 400, 'invalid_state', `payment is ${p.transferStatus}, ${op} needs AUTHORIZED`, {
          idempotencyKey: key,
        });
      }
      let amount = p.amount;
      if (op === 'capture') {
        const requested = ((raw ?? {}) as { amount?: unknown }).amount;
        if (requested !== undefined && requested !== null) {
          if (typeof requested !== 'number' || !Number.isSafeInteger(requested) || requested <= 0) {
            return reject(op, 400, 'bad_request', 'amount must be a positive integer', {
              idempotencyKey: key,
            });
          }
          if (requested > p.amount) {
            return reject(
              op,
              400,
              'amount_exceeds_hold',
              `amount ${requested} exceeds the held ${p.amount}`,
              {
                idempotencyKey: key,
                amount: requested,
              },
            );
          }
          amount = requested;
        }
      }
      stored.wire = {
        ...p,
        transferStatus: t.to,
        ...(op === 'capture' ? { finalAmount: amount } : {}),
      };
      record({
        op,
        idempotencyKey: key,
        amount,
        currency: p.currency,
        outcome: op === 'capture' ? 'settled' : 'cancelled',
        httpStatus: 200,
        ...withheld(outcome),
      });
      return { status: 200, body: stored.wire };
    },

    status(key) {
      const stored = payments.get(key);
      if (stored === undefined)
        return reject('status', 404, 'not_found', 'no payment with this idempotencyKey', {
          idempotencyKey: key,
        });
      record({ op: 'status', idempotencyKey: key, outcome: 'found', httpStatus: 200 });
      return { status: 200, body: stored.wire };
    },

    record,

    ledger() {
      return {
        entries: entries.map((e) => ({ ...e })),
        payments: [...payments.values()].map((p) => structuredClone(p.wire)),
        tokensIssued,
      };
    },

    reset() {
      tokens = new Map();
      cards = new Map();
      payments = new Map();
      rules = [];
      entries = [];
      tokensIssued = 0;
    },
  };
}

function defaultCardInfo(input: { cardHolderName?: string; last4?: string }): LiquidoCardInfo {
  return {
    cardHolderName: input.cardHolderName ?? 'card_holder_name',
    expirationMonth: 9,
    expirationYear: 2030,
    brand: 'VISA',
    bin: '458124',
    last4: input.last4 ?? '0000',
  };
}

function chargeProblem(b: Record<string, unknown>): string | undefined {
  if (typeof b.idempotencyKey !== 'string' || b.idempotencyKey === '') return 'idempotencyKey is required';
  if (typeof b.amount !== 'number' || !Number.isSafeInteger(b.amount) || b.amount <= 0) {
    return 'amount must be a positive integer (minor units)';
  }
  if (typeof b.currency !== 'string' || !/^[A-Z]{3}$/.test(b.currency)) return 'currency must be ISO-4217';
  if (typeof b.country !== 'string' || !/^[A-Z]{2}$/.test(b.country))
    return 'country must be ISO 3166 alpha-2';
  if (b.paymentMethod !== 'CREDIT_CARD') return 'paymentMethod must be CREDIT_CARD';
  if (b.paymentFlow !== 'DIRECT') return 'paymentFlow must be DIRECT';
  if (typeof b.capture !== 'boolean') return 'capture must be a boolean (false for a pre-authorization)';
  if (b.card !== undefined) return 'this sandbox takes vaulted cards only: send cardId';
  if (typeof b.cardId !== 'string' || b.cardId === '') return 'cardId is required';
  return undefined;
}
