// Hand-written checks of the request bodies, written once at module load: a per-request schema
// compile would cost more than the rest of the request, and the sandbox is the benchmark's peer.

export interface ValidationError {
  errorName: string;
  message: string;
  jsonPath: string;
}

type Json = Record<string, unknown>;

const TRANSACTION_REFERENCE = /^[A-Za-z0-9\-_/!@#$%()*=.:;?[\]{}~+]{1,64}$/;
const ENTITY = /^([A-Za-z0-9]+[A-Za-z0-9 ]*)?$/;
const CURRENCY = /^[A-Z]{3}$/;
const DIGITS = /^[0-9]{12,19}$/;
const PARTIAL_REFERENCE = /^[A-Za-z0-9-]+$/;
const HREF = /^https?:\/\/\S+$/;
const INTENTS = new Set(['subscription', 'instalment', 'unscheduled']);

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function missing(errors: ValidationError[], path: string): void {
  errors.push({ errorName: 'fieldIsMissing', message: 'Field is missing', jsonPath: path });
}

function objectAt(errors: ValidationError[], parent: Json, key: string, path: string): Json | undefined {
  const value = parent[key];
  if (value === undefined) {
    missing(errors, path);
    return undefined;
  }
  if (!isObject(value)) {
    errors.push({ errorName: 'fieldMustBeObject', message: 'Field must be an object', jsonPath: path });
    return undefined;
  }
  return value;
}

function stringAt(
  errors: ValidationError[],
  parent: Json,
  key: string,
  path: string,
  rule: { max: number; pattern?: RegExp; optional?: boolean },
): string | undefined {
  const value = parent[key];
  if (value === undefined) {
    if (!rule.optional) missing(errors, path);
    return undefined;
  }
  if (typeof value !== 'string') {
    errors.push({ errorName: 'fieldMustBeString', message: 'Field must be a string', jsonPath: path });
    return undefined;
  }
  if (value.length === 0) {
    errors.push({ errorName: 'stringIsTooShort', message: 'String is too short', jsonPath: path });
    return undefined;
  }
  if (value.length > rule.max) {
    errors.push({
      errorName: 'stringIsTooLong',
      message: `String is longer than ${rule.max} characters`,
      jsonPath: path,
    });
    return undefined;
  }
  if (rule.pattern && !rule.pattern.test(value)) {
    errors.push({
      errorName: 'stringFailedRegexCheck',
      message: 'String does not match the expected pattern',
      jsonPath: path,
    });
    return undefined;
  }
  return value;
}

function integerAt(
  errors: ValidationError[],
  parent: Json,
  key: string,
  path: string,
  min: number,
  max: number,
): number | undefined {
  const value = parent[key];
  if (value === undefined) {
    missing(errors, path);
    return undefined;
  }
  if (typeof value !== 'number') {
    errors.push({ errorName: 'fieldMustBeNumber', message: 'Field must be a number', jsonPath: path });
    return undefined;
  }
  if (!Number.isInteger(value)) {
    errors.push({ errorName: 'fieldMustBeInteger', message: 'Field must be an integer', jsonPath: path });
    return undefined;
  }
  if (value < min) {
    errors.push({
      errorName: 'integerIsTooSmall',
      message: `Integer must be at least ${min}`,
      jsonPath: path,
    });
    return undefined;
  }
  if (value > max) {
    errors.push({
      errorName: 'integerIsTooLarge',
      message: `Integer must be at most ${max}`,
      jsonPath: path,
    });
    return undefined;
  }
  return value;
}

function expiryAt(errors: ValidationError[], instrument: Json, path: string): void {
  const expiry = objectAt(errors, instrument, 'cardExpiryDate', `${path}.cardExpiryDate`);
  if (!expiry) return;
  integerAt(errors, expiry, 'month', `${path}.cardExpiryDate.month`, 1, 12);
  integerAt(errors, expiry, 'year', `${path}.cardExpiryDate.year`, 1000, 9999);
}

export type InstrumentType = 'card/plain' | 'card/token' | 'card/networkToken+applepay';

export interface AuthorizationRequest {
  transactionReference: string;
  entity: string;
  amount: number;
  currency: string;
  intent: string;
  /** Absent when a recurring link was followed without a paymentInstrument. */
  instrumentType: InstrumentType | undefined;
  /** What identifies the card across calls: number, token href or DPAN (never logged or returned). */
  cardKey: string | undefined;
  cardHolderName?: string | undefined;
}

function instrumentAt(
  errors: ValidationError[],
  instruction: Json,
  allowed: ReadonlySet<string>,
): { type: InstrumentType; cardKey: string; cardHolderName?: string } | undefined {
  const path = '$.instruction.paymentInstrument';
  const instrument = objectAt(errors, instruction, 'paymentInstrument', path);
  if (!instrument) return undefined;
  const type = stringAt(errors, instrument, 'type', `${path}.type`, { max: 64 });
  if (type === undefined) return undefined;
  if (!allowed.has(type)) {
    errors.push({
      errorName: 'fieldHasInvalidValue',
      message: 'Unsupported payment instrument type',
      jsonPath: `${path}.type`,
    });
    return undefined;
  }
  const cardHolderName = stringAt(errors, instrument, 'cardHolderName', `${path}.cardHolderName`, {
    max: 255,
    optional: true,
  });
  let cardKey: string | undefined;
  if (type === 'card/plain') {
    cardKey = stringAt(errors, instrument, 'cardNumber', `${path}.cardNumber`, { max: 19, pattern: DIGITS });
    expiryAt(errors, instrument, path);
  } else if (type === 'card/token') {
    cardKey = stringAt(errors, instrument, 'href', `${path}.href`, { max: 1024, pattern: HREF });
  } else {
    cardKey = stringAt(errors, instrument, 'dpan', `${path}.dpan`, { max: 19, pattern: DIGITS });
    expiryAt(errors, instrument, path);
  }
  if (cardKey === undefined) return undefined;
  return { type: type as InstrumentType, cardKey: `${type}:${cardKey}`, cardHolderName };
}

export const MIGRATE_INSTRUMENTS: ReadonlySet<string> = new Set([
  'card/plain',
  'card/token',
  'card/networkToken+applepay',
]);
export const RECURRING_INSTRUMENTS: ReadonlySet<string> = MIGRATE_INSTRUMENTS;

/** Checks a recurring / migrateRecurring authorization body; returns the request or the errors. */
export function validateAuthorization(
  body: unknown,
  instruments: ReadonlySet<string>,
  opts: { instrumentOptional?: boolean } = {},
): { ok: true; request: AuthorizationRequest } | { ok: false; errors: ValidationError[] } {
  const errors: ValidationError[] = [];
  if (!isObject(body)) {
    missing(errors, '$');
    return { ok: false, errors };
  }
  const transactionReference = stringAt(errors, body, 'transactionReference', '$.transactionReference', {
    max: 64,
    pattern: TRANSACTION_REFERENCE,
  });
  const merchant = objectAt(errors, body, 'merchant', '$.merchant');
  const entity = merchant
    ? stringAt(errors, merchant, 'entity', '$.merchant.entity', { max: 32, pattern: ENTITY })
    : undefined;
  const instruction = objectAt(errors, body, 'instruction', '$.instruction');
  let amount: number | undefined;
  let currency: string | undefined;
  let intent: string | undefined;
  let instrument: ReturnType<typeof instrumentAt>;
  if (instruction) {
    const narrative = objectAt(errors, instruction, 'narrative', '$.instruction.narrative');
    if (narrative) stringAt(errors, narrative, 'line1', '$.instruction.narrative.line1', { max: 24 });
    const value = objectAt(errors, instruction, 'value', '$.instruction.value');
    if (value) {
      amount = integerAt(errors, value, 'amount', '$.instruction.value.amount', 1, Number.MAX_SAFE_INTEGER);
      currency = stringAt(errors, value, 'currency', '$.instruction.value.currency', {
        max: 3,
        pattern: CURRENCY,
      });
    }
    intent = stringAt(errors, instruction, 'intent', '$.instruction.intent', { max: 32 });
    if (intent !== undefined && !INTENTS.has(intent)) {
      errors.push({
        errorName: 'fieldHasInvalidValue',
        message: 'intent must be subscription, instalment or unscheduled',
        jsonPath: '$.instruction.intent',
      });
    }
    // A recurring link already names the verified card: the instrument may be left out there.
    if (!(opts.instrumentOptional && instruction.paymentInstrument === undefined)) {
      instrument = instrumentAt(errors, instruction, instruments);
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    request: {
      transactionReference: transactionReference!,
      entity: entity!,
      amount: amount!,
      currency: currency!,
      intent: intent!,
      instrumentType: instrument?.type,
      cardKey: instrument?.cardKey,
      cardHolderName: instrument?.cardHolderName,
    },
  };
}

export interface PartialRequest {
  amount: number;
  currency: string;
  reference: string;
}

/** Checks a partial settle / partial refund body. */
export function validatePartial(
  body: unknown,
): { ok: true; request: PartialRequest } | { ok: false; errors: ValidationError[] } {
  const errors: ValidationError[] = [];
  if (!isObject(body)) {
    missing(errors, '$');
    return { ok: false, errors };
  }
  const value = objectAt(errors, body, 'value', '$.value');
  let amount: number | undefined;
  let currency: string | undefined;
  if (value) {
    amount = integerAt(errors, value, 'amount', '$.value.amount', 1, Number.MAX_SAFE_INTEGER);
    currency = stringAt(errors, value, 'currency', '$.value.currency', { max: 3, pattern: CURRENCY });
  }
  const reference = stringAt(errors, body, 'reference', '$.reference', {
    max: 128,
    pattern: PARTIAL_REFERENCE,
  });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, request: { amount: amount!, currency: currency!, reference: reference! } };
}
