import { type ZodType, z } from 'zod';
import type { ValidationError } from './validateBody.js';

// The request bodies of Card Payments v7 (worldpay-card-payments-openapi.yaml, `version: '7'`),
// as zod schemas built once at module load: a request costs the parse and nothing else. Each
// schema names the component it mirrors. Where the file cannot mean what it says, the check
// follows what it obviously means (each spot says so); test/gateways/worldpay-v7-openapi.test.ts
// holds these checks against the file.

// #/components/schemas/transactionReference
const transactionReference = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[-A-Za-z0-9_!@#$%()*=.:;?[\]{}~`/+]*$/);
// #/components/schemas/entity
const entity = z
  .string()
  .min(1)
  .max(32)
  .regex(/^([A-Za-z0-9]+[A-Za-z0-9 ]*)?$/);
// #/components/schemas/narrative. The file's line pattern is not a valid regular expression
// (an unescaped `[]` inside a class); Worldpay turns unsupported characters into spaces, so
// only the length is checked.
const narrative = z.object({
  line1: z.string().min(1).max(24),
  line2: z.string().min(1).max(24).optional(),
});
// #/components/schemas/value (+ the MIT's own additions). The file's currency pattern
// `^[A-Z]$` cannot match its own 3-character length: read as `^[A-Z]{3}$`.
const value = z.object({
  amount: z.int(),
  currency: z
    .string()
    .length(3)
    .regex(/^[A-Z]{3}$/),
  acceptPartialAmount: z.boolean().optional(),
  surchargeAmount: z.int().optional(),
  convenienceAmount: z.int().optional(),
});
// #/components/schemas/expiryDateCard and expiryDateToken: integers whose `pattern`s (which a
// JSON Schema validator ignores on integers) say month 1-12 and a four-digit year.
const expiryDate = z.object({
  month: z.int().min(1).max(12),
  year: z.int().min(1000).max(9999),
});
// #/components/schemas/cardNumber and tokenNumber
const cardNumber = z
  .string()
  .min(12)
  .max(19)
  .regex(/^[0-9]+$/);
// #/components/schemas/cardHolderName
const cardHolderName = z.string().min(1).max(255);
const schemeReference = z.string().min(1).max(255);

// #/components/schemas/card_plain_mit, card_token_mit, card_networkToken
const cardPlainMit = z.object({
  type: z.literal('card/plain'),
  cardNumber,
  cardHolderName: cardHolderName.optional(),
  expiryDate,
});
const cardTokenMit = z.object({ type: z.literal('card/token'), href: z.string() });
const cardNetworkToken = z.object({
  type: z.literal('card/networkToken'),
  tokenNumber: cardNumber,
  expiryDate,
  cardHolderName: cardHolderName.optional(),
});
// #/components/schemas/card_plain and card_token (customer-initiated: a CVC may come along).
const cvc = z
  .string()
  .min(3)
  .max(4)
  .regex(/^[0-9]*$/);
const cardPlain = cardPlainMit.extend({ cvc: cvc.optional() });
const cardToken = cardTokenMit.extend({ cvc: cvc.optional() });

// #/components/schemas/mit_subscription, mit_installment, mit_unscheduled
const mitAgreement = z.discriminatedUnion('type', [
  z.object({ type: z.literal('subscription'), schemeReference: schemeReference.optional() }),
  z.object({
    type: z.literal('installment'),
    installmentType: z.enum(['merchant']),
    schemeReference: schemeReference.optional(),
  }),
  z.object({ type: z.literal('unscheduled'), schemeReference: schemeReference.optional() }),
]);
// #/components/schemas/cit_cardOnFile, cit_subscription, cit_installment
const citAgreement = z.discriminatedUnion('type', [
  z.object({ type: z.literal('cardOnFile'), storedCardUsage: z.enum(['first', 'subsequent']) }),
  z.object({ type: z.literal('subscription'), storedCardUsage: z.enum(['first']).optional() }),
  z.object({
    type: z.literal('installment'),
    installmentType: z.enum(['merchant', 'latinAmerica']),
    installmentPlan: z.object({ numberOfInstallments: z.int() }).optional(),
    storedCardUsage: z.enum(['first', 'subsequent']).optional(),
  }),
]);

const merchant = z.object({ entity });
const requestAutoSettlement = z.object({ enabled: z.boolean().optional() });

// #/components/schemas/merchantInitiatedTransaction (the parts the sandbox models)
const merchantInitiatedTransaction = z.object({
  transactionReference,
  merchant,
  instruction: z.object({
    requestAutoSettlement,
    value,
    narrative,
    paymentInstrument: z.discriminatedUnion('type', [cardPlainMit, cardTokenMit, cardNetworkToken]),
    customerAgreement: mitAgreement,
    requestAccountUpdater: z.boolean().optional(),
  }),
});

// #/components/schemas/customerInitiatedTransaction (the parts the sandbox models). Token
// creation is in Worldpay's guides, not in the file's schema (which leaves extra fields open).
const customerInitiatedTransaction = z.object({
  transactionReference,
  channel: z.enum(['ecom', 'moto']),
  merchant,
  instruction: z.object({
    requestAutoSettlement,
    value,
    narrative,
    paymentInstrument: z.discriminatedUnion('type', [cardPlain, cardToken, cardNetworkToken]),
    customerAgreement: citAgreement.optional(),
    tokenCreation: z.object({ type: z.enum(['worldpay']) }).optional(),
  }),
});

export type MitRequest = z.infer<typeof merchantInitiatedTransaction>;
export type CitRequest = z.infer<typeof customerInitiatedTransaction>;
export type V7Instrument =
  | MitRequest['instruction']['paymentInstrument']
  | CitRequest['instruction']['paymentInstrument'];

type Issue = z.core.$ZodIssue;

function jsonPath(path: readonly PropertyKey[]): string {
  let out = '$';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  return out;
}

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let at = body;
  for (const key of path) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

const MUST_BE: Record<string, [string, string]> = {
  string: ['fieldMustBeString', 'Field must be a string'],
  number: ['fieldMustBeNumber', 'Field must be a number'],
  int: ['fieldMustBeInteger', 'Field must be an integer'],
  boolean: ['fieldMustBeBoolean', 'Field must be a boolean'],
  object: ['fieldMustBeObject', 'Field must be an object'],
  array: ['fieldMustBeArray', 'Field must be an array'],
};

/** One zod issue in Worldpay's words; never echoes the value (it may be a card number). */
function toValidationError(issue: Issue, body: unknown): ValidationError {
  const at = jsonPath(issue.path);
  const error = (errorName: string, message: string) => ({ errorName, message, jsonPath: at });
  if (valueAt(body, issue.path) === undefined && issue.path.length > 0) {
    return error('fieldIsMissing', 'Field is missing');
  }
  switch (issue.code) {
    case 'invalid_type': {
      const [name, message] = MUST_BE[issue.expected] ?? [
        'fieldHasInvalidValue',
        'Field has an invalid value',
      ];
      return error(name, message);
    }
    case 'too_small':
      return issue.origin === 'string'
        ? error('stringIsTooShort', `String is shorter than ${issue.minimum} characters`)
        : error('integerIsTooSmall', `Integer must be at least ${issue.minimum}`);
    case 'too_big':
      return issue.origin === 'string'
        ? error('stringIsTooLong', `String is longer than ${issue.maximum} characters`)
        : error('integerIsTooLarge', `Integer must be at most ${issue.maximum}`);
    case 'invalid_format':
      return error('stringFailedRegexCheck', 'String does not match the expected pattern');
    case 'invalid_value':
      return error('fieldHasInvalidValue', `Field must be one of: ${issue.values.join(', ')}`);
    case 'invalid_union': {
      // A discriminated union names its options on the issue (not in zod's issue types).
      const options = (issue as { options?: unknown[] }).options;
      return error(
        'fieldHasInvalidValue',
        options ? `Field must be one of: ${options.join(', ')}` : 'Field has an invalid value',
      );
    }
    default:
      return error('fieldHasInvalidValue', 'Field has an invalid value');
  }
}

export type Checked<T> = { ok: true; request: T } | { ok: false; errors: ValidationError[] };

function checker<T>(schema: ZodType<T>) {
  return (body: unknown): Checked<T> => {
    const parsed = schema.safeParse(body);
    if (parsed.success) return { ok: true, request: parsed.data };
    return { ok: false, errors: parsed.error.issues.map((issue) => toValidationError(issue, body)) };
  };
}

/** Checks a `POST /cardPayments/merchantInitiatedTransactions` body. */
export const checkMerchantInitiated = checker(merchantInitiatedTransaction);
/** Checks a `POST /cardPayments/customerInitiatedTransactions` body. */
export const checkCustomerInitiated = checker(customerInitiatedTransaction);
