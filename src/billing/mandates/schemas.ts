import { z } from 'zod';
import { containsCardNumber, hasControlCharacter } from '../../domain/card.ts';
import { parseInstant } from '../../domain/instant.ts';
import { narrativeProblem } from '../../domain/narrative.ts';
import { schemeReferenceProblem } from '../../domain/scheme-reference.ts';
import { ValidationError } from '../../errors.ts';

/**
 * A free-text field: no control characters, and nothing that passes for a card number (a PAN
 * typed into the wrong field must not be stored in plain text). Neither message repeats the value.
 */
export const freeText = (
  s: z.ZodString,
  cardMessage = 'looks like a card number; card numbers belong only in cardNumber or dpan (the value is not repeated here)',
) =>
  s
    .refine((v) => !hasControlCharacter(v), { message: 'must not contain control characters' })
    .refine((v) => !containsCardNumber(v), { message: cardMessage });

/** A statement narrative: free text Worldpay can print (src/domain/narrative.ts). */
export const narrativeSchema = freeText(z.string()).superRefine((v, ctx) => {
  const problem = narrativeProblem(v);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

const entityPattern = /^[A-Za-z0-9][A-Za-z0-9 ]{0,31}$/;

const expiry = {
  expiryMonth: z.number().int().min(1).max(12),
  expiryYear: z.number().int().min(2000).max(2100),
};

const v6 = { api: z.literal('v6').optional() };
const cardDigits = z.string().regex(/^\d{12,19}$/, 'must be 12-19 digits');

/**
 * A Card Payments v7 credential: a Worldpay token, a card or a network token, with the scheme
 * reference of the customer's first, customer-initiated payment (required for a card or a
 * network token, optional for a token). The reference is kept byte for byte.
 */
export const v7CredentialSchema = z
  .object({
    api: z.literal('v7'),
    schemeReference: z
      .string()
      .describe(
        "The scheme reference the customer's first, customer-initiated payment answered with (scheme.reference), byte for byte; 1-255 characters. Required with card or networkToken.",
      )
      .optional(),
    tokenHref: z.string().url().optional(),
    card: z
      .object({
        number: cardDigits,
        ...expiry,
        holderName: freeText(z.string().min(1).max(255)).optional(),
      })
      .strict()
      .optional(),
    networkToken: z
      .object({ number: cardDigits, ...expiry })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const given = [c.tokenHref, c.card, c.networkToken].filter((v) => v !== undefined).length;
    if (given !== 1)
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'give exactly one of tokenHref, card or networkToken',
      });
    if (c.schemeReference === undefined) {
      if (c.card || c.networkToken)
        ctx.addIssue({
          code: 'custom',
          path: ['schemeReference'],
          message: `is required for a ${c.card ? 'card' : 'network token'}: the scheme reference its first, customer-initiated payment answered with`,
        });
    } else {
      const problem = schemeReferenceProblem(c.schemeReference, c.card?.number ?? c.networkToken?.number);
      if (problem !== null) ctx.addIssue({ code: 'custom', path: ['schemeReference'], message: problem });
    }
  });
export type V7CredentialInput = z.infer<typeof v7CredentialSchema>;

/**
 * How a mandate is charged. Worldpay v6 (the default, `api` left out or `v6`): a recurring link
 * from a verification, or data for migrateRecurring; Liquido: a vaulted card. Worldpay v7:
 * `api: "v7"` with a token, a card or a network token and the first payment's scheme reference.
 */
export const credentialInputSchema = z.union([
  z.object({ ...v6, link: z.string().url() }).strict(),
  z
    .object({
      ...v6,
      cardNumber: cardDigits,
      ...expiry,
      cardHolderName: freeText(z.string().max(255)).optional(),
    })
    .strict(),
  z.object({ ...v6, tokenHref: z.string().url() }).strict(),
  z
    .object({
      ...v6,
      dpan: cardDigits,
      ...expiry,
      cardHolderName: freeText(z.string().max(255)).optional(),
    })
    .strict(),
  z.object({ liquidoCardId: z.string().min(1).max(128) }).strict(),
  v7CredentialSchema,
]);
export type CredentialInput = z.infer<typeof credentialInputSchema>;

/**
 * An instant: an ISO-8601 string (all JSON can carry), or a Date from in-process callers. Never
 * null, a number or a boolean: coercing those made 1970-01-01 of `start: null`.
 */
export const instantInput = z.union([z.string(), z.date()], {
  message: 'must be an ISO-8601 date or date-time string',
});

/** An instant input read in the mandate's zone, within the sane range. */
export function instantOf(field: string, v: string | Date, zone: string): Date {
  return parseInstant(field, typeof v === 'string' ? v : v.toISOString(), zone);
}

/** The enumerations a mandate is created with: the API's schema and the CLI's flags both take these. */
export const INTENTS = ['subscription', 'instalment', 'unscheduled'] as const;
export const GATEWAYS = ['worldpay', 'liquido'] as const;
export const SETTLE_MODES = ['full', 'partial', 'none'] as const;
/** Worldpay's card APIs a credential is charged through (credentials.api). */
export const WORLDPAY_APIS = ['v6', 'v7'] as const;

export const createMandateSchema = z
  .object({
    customerRef: freeText(z.string().min(1).max(128)),
    intent: z.enum(INTENTS),
    /** Per cycle; for instalment plans, or give totalAmount instead. */
    amount: z.number().int().positive().optional(),
    currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code'),
    entity: freeText(z.string().regex(entityPattern, 'must be 1-32 letters, digits or spaces')).optional(),
    narrative: narrativeSchema,
    interval: z.string().optional(),
    /** ISO-8601; without an offset, wall-clock time in `timezone` (domain/instant.ts). */
    start: instantInput.optional(),
    timezone: z.string().default('UTC'),
    localTime: z.string().optional(),
    trialEnd: instantInput.optional(),
    end: instantInput.optional(),
    /** A start in the past charges every cycle since (else only the latest one due). */
    backfill: z.boolean().optional(),
    instalments: z.number().int().min(1).max(1000).optional(),
    /** Instalment plans: a total to split into N instalments, the last carrying the remainder. */
    totalAmount: z.number().int().positive().optional(),
    gateway: z.enum(GATEWAYS).default('worldpay'),
    settleMode: z.enum(SETTLE_MODES).default('full'),
    settlePercent: z.number().int().min(1).max(100).optional(),
    credential: credentialInputSchema,
  })
  .strict();
export type CreateMandateInput = z.input<typeof createMandateSchema>;

/**
 * Turn a zod failure into our ValidationError naming the first bad field. `at`: where the input
 * sits in the service's input, named before its fields (`credential` for a credential given alone).
 */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, at?: string): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    const { path, message } = firstIssue(r.error.issues, at === undefined ? [] : [at]);
    throw new ValidationError(path.join('.') || 'body', message);
  }
  return r.data;
}

/**
 * The issue to report. A value that fits none of a union's shapes is reported by the one shape
 * it was meant for, when only one takes all its keys and its `api`: `{api: "v7", card}`
 * without a scheme reference is `credential.schemeReference: is required...`, not "Invalid input".
 */
function firstIssue(
  issues: readonly z.core.$ZodIssue[],
  base: PropertyKey[],
): { path: PropertyKey[]; message: string } {
  const issue = issues[0]!;
  const path = [...base, ...issue.path];
  if (issue.code === 'invalid_union') {
    const meant = issue.errors.filter(
      (branch) =>
        !branch.some(
          (i) =>
            (i.code === 'unrecognized_keys' && i.path.length === 0) ||
            (i.code === 'invalid_value' && i.path.length === 1 && i.path[0] === 'api'),
        ),
    );
    if (meant.length === 1 && meant[0]!.length > 0) return firstIssue(meant[0]!, path);
  }
  return { path, message: issue.message };
}
