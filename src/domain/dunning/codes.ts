/**
 * The one table of what a refusal means. Facts in shared/spec/DUNNING.md; every row says why,
 * because the reason ends up on the attempt and in front of an operator.
 *
 * Categories:
 * - `soft`: the issuer may approve later; retry on the schedule, counted by the card ledger.
 * - `needs_new_credential`: this credential will not be approved again; the mandate waits for
 *   new card details (a new customer-initiated verification).
 * - `stop`: the mandate is suspended and an operator looks (fraud, scheme "never retry",
 *   a problem with our own request or merchant set-up that retrying cannot fix).
 *
 * `blocksCredential` marks the codes after which no attempt may ever be made on the same
 * credential (Visa category 1, Mastercard MAC 03/21): the card ledger records the block so
 * every mandate sharing the credential stops, not only the refused one.
 */

export type DunningCategory = 'soft' | 'needs_new_credential' | 'stop';

/** Visa's reattempt categories: 1 never, 2 cannot approve now, 3 data quality, 4 generic. */
export type VisaCategory = 1 | 2 | 3 | 4;

export interface CodeRule {
  readonly category: DunningCategory;
  /** Short human meaning plus why the category; shown to operators. */
  readonly reason: string;
  readonly visaCategory?: VisaCategory;
  /** No attempt ever again on this credential, from any mandate. */
  readonly blocksCredential?: boolean;
  /** Earliest retry after the refusal, in milliseconds (Mastercard MAC 02, 24-30). */
  readonly minWaitMs?: number;
  /** Documented for another Worldpay gateway only, not confirmed for Access Worldpay. */
  readonly unconfirmed?: boolean;
}

export type CodeTable = Readonly<Record<string, CodeRule>>;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const rule = (
  category: DunningCategory,
  reason: string,
  extra: Omit<CodeRule, 'category' | 'reason'> = {},
): CodeRule => ({ category, reason, ...extra });

/**
 * Access Worldpay refusal codes (`code`, v7 `refusalCode`). Visa categories follow Visa's
 * published reattempt lists where the ISO meaning matches; DUNNING.md puts 59 in category 1
 * and we follow it (stricter). Codes that point at our own request or merchant account
 * (3, 13, 29, 30, 58) stop rather than burn the card's reattempt budget on a certain refusal.
 */
export const REFUSAL_CODES: CodeTable = {
  '1': rule(
    'soft',
    'refer to card issuer: no voice referral in a merchant-initiated charge; generic soft decline',
    {
      visaCategory: 4,
    },
  ),
  '2': rule('soft', 'referred: generic soft decline', { visaCategory: 4 }),
  '3': rule(
    'stop',
    'invalid acceptor/merchant: our merchant set-up is refused, retrying the card cannot help',
    {
      visaCategory: 2,
    },
  ),
  '4': rule('stop', 'hold card/capture: Visa category 1, never reattempt this card', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '5': rule('soft', 'refused/do not honour: generic soft decline, retried and counted', { visaCategory: 4 }),
  '6': rule('needs_new_credential', 'try another card: the issuer asks for a different card', {
    visaCategory: 4,
  }),
  '7': rule('stop', 'pick up card, special condition: Visa category 1, never reattempt this card', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '8': rule(
    'soft',
    'honour with ID: cardholder identification is impossible in a merchant-initiated charge',
    {
      visaCategory: 4,
    },
  ),
  '10': rule(
    'soft',
    'partial approval: a partial amount is not accepted; the full amount may succeed later',
    {
      visaCategory: 4,
    },
  ),
  '12': rule('stop', 'invalid transaction: Visa category 1, never reattempt this card', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '13': rule(
    'stop',
    'invalid amount: the same amount would be refused again; an operator checks the charge',
    {
      visaCategory: 4,
    },
  ),
  '14': rule('needs_new_credential', 'invalid card/account number: Visa category 1, a new card is needed', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '15': rule('stop', 'invalid issuer: Visa category 1, never reattempt this card', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '17': rule(
    'stop',
    'annulation by client: the cardholder cancelled; an operator confirms before any retry',
    {
      visaCategory: 4,
    },
  ),
  '19': rule('soft', 're-enter transaction: Visa category 2, retry later', { visaCategory: 2 }),
  '20': rule('soft', 'acquirer error/no action taken: transient, retry later', { visaCategory: 4 }),
  '25': rule('soft', 'unable to locate record: generic soft decline', { visaCategory: 4 }),
  '28': rule('soft', 'file temporarily unavailable: transient, retry later', { visaCategory: 4 }),
  '29': rule('stop', 'impossible reference number: our request is malformed; an operator looks', {
    visaCategory: 4,
  }),
  '30': rule('stop', 'format error: our request is malformed; retrying unchanged fails again', {
    visaCategory: 4,
  }),
  '33': rule('needs_new_credential', 'card expired: new card details are needed', { visaCategory: 3 }),
  '34': rule('stop', 'fraud suspicion: suspend the mandate and tell an operator', { visaCategory: 4 }),
  '38': rule('soft', 'security code expired: not used in merchant-initiated charges; generic soft decline', {
    visaCategory: 4,
  }),
  '39': rule('needs_new_credential', 'no credit account: this card has no account to charge', {
    visaCategory: 2,
  }),
  '41': rule('needs_new_credential', 'lost card: Visa category 1, never reattempt; a new card is needed', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '43': rule('needs_new_credential', 'stolen card: Visa category 1, never reattempt; a new card is needed', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '46': rule(
    'needs_new_credential',
    'closed account: Visa category 1, never reattempt; a new card is needed',
    {
      visaCategory: 1,
      blocksCredential: true,
    },
  ),
  '51': rule('soft', 'insufficient funds/limit exceeded: Visa category 2, funds may arrive', {
    visaCategory: 2,
  }),
  '52': rule('needs_new_credential', 'no checking account: this card has no account to charge', {
    visaCategory: 2,
  }),
  '53': rule('needs_new_credential', 'no savings account: this card has no account to charge', {
    visaCategory: 2,
  }),
  '54': rule('needs_new_credential', 'expired card: new card details are needed', { visaCategory: 3 }),
  '55': rule(
    'needs_new_credential',
    'invalid security code/PIN: Visa category 3, revalidate the card with the customer first',
    { visaCategory: 3 },
  ),
  '56': rule('needs_new_credential', 'unknown card: the issuer has no record of this card', {
    visaCategory: 4,
  }),
  '57': rule('stop', 'not permitted to issuer/cardholder: Visa category 1, never reattempt this card', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '58': rule(
    'stop',
    'not permitted to acquirer/terminal: our merchant set-up is refused; an operator looks',
    {
      visaCategory: 4,
    },
  ),
  '59': rule('stop', 'suspected fraud: Visa category 1 per scheme lists, never reattempt this card', {
    visaCategory: 1,
    blocksCredential: true,
  }),
  '61': rule('soft', 'exceeds withdrawal limit: Visa category 2, limits reset', { visaCategory: 2 }),
  '62': rule('soft', 'restricted card: Visa category 2, the restriction may lift', { visaCategory: 2 }),
  '65': rule(
    'needs_new_credential',
    'exemption rejected: strong customer authentication needed, only a customer-initiated payment can do it',
    { visaCategory: 2 },
  ),
  '68': rule('soft', 'transaction timed out: transient, retry later', { visaCategory: 4, unconfirmed: true }),
  '80': rule('soft', 'authorisation expired: retry later', { visaCategory: 4, unconfirmed: true }),
  '85': rule('soft', 'rejected by issuer: generic soft decline', { visaCategory: 4, unconfirmed: true }),
  '91': rule('soft', 'issuer temporarily unreachable: Visa category 2, retry later', {
    visaCategory: 2,
    unconfirmed: true,
  }),
  '94': rule(
    'stop',
    'duplicate request: an earlier identical request may have been approved; an operator reconciles before any retry',
    { visaCategory: 4, unconfirmed: true },
  ),
  '96': rule('soft', 'system malfunction: Visa category 2, retry later', {
    visaCategory: 2,
    unconfirmed: true,
  }),
  '97': rule('stop', 'security breach: suspend the mandate and tell an operator', {
    visaCategory: 4,
    unconfirmed: true,
  }),
};

/**
 * Mastercard Merchant Advice Codes (`refusalAdvice.code`, v7 `advice.code`). MAC 03 and 21
 * carry a fee on any retry within 30 days, so they block the credential. 04/22 point at our
 * token or merchant set-up; 40/41/43 say the card is prepaid or virtual, where waiting does not
 * add funds or life to the card, so a new credential is the only way forward.
 */
export const ADVICE_CODES: CodeTable = {
  '01': rule('needs_new_credential', 'MAC 01 new account information available: update the card, then retry'),
  '02': rule('soft', 'MAC 02 cannot approve now: retry no sooner than 72 hours', { minWaitMs: 72 * HOUR }),
  '03': rule('stop', 'MAC 03 do not try again: never retry this card (fee on any retry within 30 days)', {
    blocksCredential: true,
  }),
  '04': rule(
    'needs_new_credential',
    'MAC 04 token requirements not met: the same token fails again; re-tokenise through a customer-initiated verification',
  ),
  '21': rule(
    'stop',
    'MAC 21 payment cancellation: the cardholder stopped the recurring agreement; never resubmit',
    {
      blocksCredential: true,
    },
  ),
  '22': rule('stop', 'MAC 22 merchant does not qualify for product code: our set-up; an operator looks'),
  '24': rule('soft', 'MAC 24 retry after 1 hour', { minWaitMs: HOUR }),
  '25': rule('soft', 'MAC 25 retry after 24 hours', { minWaitMs: 24 * HOUR }),
  '26': rule('soft', 'MAC 26 retry after 2 days', { minWaitMs: 2 * DAY }),
  '27': rule('soft', 'MAC 27 retry after 4 days', { minWaitMs: 4 * DAY }),
  '28': rule('soft', 'MAC 28 retry after 6 days', { minWaitMs: 6 * DAY }),
  '29': rule('soft', 'MAC 29 retry after 8 days', { minWaitMs: 8 * DAY }),
  '30': rule('soft', 'MAC 30 retry after 10 days', { minWaitMs: 10 * DAY }),
  '40': rule(
    'needs_new_credential',
    'MAC 40 non-reloadable prepaid card: funds will not come back; a new card is needed',
  ),
  '41': rule(
    'needs_new_credential',
    'MAC 41 single-use virtual card: it cannot be charged again; never retry it',
    {
      blocksCredential: true,
    },
  ),
  '43': rule(
    'needs_new_credential',
    'MAC 43 multi-use virtual card: its limits are fixed by the issuer, waiting does not help; a new card is needed',
  ),
};

/** Worldpay sends refusal codes as decimal strings without padding; raw scheme codes pass through as-is. */
export function normaliseRefusalCode(code: string | number): string {
  return String(code).trim();
}

/** Advice codes are two digits; a gateway that sends `1` or a number means `01`. */
export function normaliseAdviceCode(code: string | number): string {
  const text = String(code).trim();
  return /^\d$/.test(text) ? `0${text}` : text;
}

const STRICTNESS: Record<DunningCategory, number> = { soft: 0, needs_new_credential: 1, stop: 2 };

export interface Classification {
  readonly code: string;
  readonly adviceCode: string | null;
  readonly category: DunningCategory;
  readonly reason: string;
  readonly visaCategory: VisaCategory | null;
  readonly blocksCredential: boolean;
  readonly minWaitMs: number;
  /** The refusal code or the advice code is not in the table; the safe default applied. */
  readonly unknownCode: boolean;
}

const UNKNOWN_REFUSAL: CodeRule = rule(
  'soft',
  'unrecognised refusal code: treated as a generic soft decline, counted',
);

/**
 * Classify a refusal from its code and optional Mastercard advice code.
 *
 * Precedence: the advice code and the refusal code are both looked up, and the STRICTER wins
 * on every axis: category (stop > needs_new_credential > soft), the credential block (either
 * blocks), and the wait (the longer minimum wait). So MAC 03 turns a soft 51 into a stop, MAC 24
 * cannot soften a lost card (41), and MAC 30 on a 51 delays the retry by at least 10 days.
 * Mastercard sends no Visa category, so `visaCategory` always comes from the refusal code.
 * An unknown advice code is ignored (the refusal code decides) but still flagged.
 */
export function classifyRefusal(
  code: string | number,
  adviceCode: string | number | null | undefined,
  tables: { codes: CodeTable; adviceCodes: CodeTable } = { codes: REFUSAL_CODES, adviceCodes: ADVICE_CODES },
): Classification {
  const c = normaliseRefusalCode(code);
  const a =
    adviceCode === null || adviceCode === undefined || String(adviceCode).trim() === '' ? null : adviceCode;
  const mac = a === null ? null : normaliseAdviceCode(a);
  const known = Object.hasOwn(tables.codes, c) ? tables.codes[c] : undefined;
  const base = known ?? UNKNOWN_REFUSAL;
  const advice = mac !== null && Object.hasOwn(tables.adviceCodes, mac) ? tables.adviceCodes[mac] : undefined;
  let unknownCode = known === undefined;
  let reason = `${displayCode(c)} ${base.reason}`;
  let category = base.category;
  let blocksCredential = base.blocksCredential === true;
  let minWaitMs = base.minWaitMs ?? 0;
  if (mac !== null && advice === undefined) {
    unknownCode = true;
    reason += `; unrecognised advice code ${displayCode(mac)} ignored`;
  }
  if (advice !== undefined) {
    if (STRICTNESS[advice.category] > STRICTNESS[category]) {
      category = advice.category;
      reason = `${advice.reason} (overrides ${reason})`;
    } else {
      reason += `; ${advice.reason}`;
    }
    blocksCredential ||= advice.blocksCredential === true;
    minWaitMs = Math.max(minWaitMs, advice.minWaitMs ?? 0);
  }
  return {
    code: c,
    adviceCode: mac,
    category,
    reason,
    visaCategory: base.visaCategory ?? null,
    blocksCredential,
    minWaitMs,
    unknownCode,
  };
}

/** Raw codes are untrusted text (up to 20 chars): quote anything that is not a plain code. */
function displayCode(code: string): string {
  return /^[A-Za-z0-9]{1,20}$/.test(code) ? code : JSON.stringify(code.slice(0, 40));
}
