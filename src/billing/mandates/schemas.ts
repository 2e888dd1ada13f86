import { z } from 'zod';
import { containsCardNumber, hasControlCharacter } from '../../domain/card.ts';
import { parseInstant } from '../../domain/instant.ts';
import { narrativeProblem } from '../../domain/narrative.ts';
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

/** How a mandate is charged: a recurring link from a verification, or data for migrateRecurring / Liquido. */
export const credentialInputSchema = z.union([
  z.object({ link: z.string().url() }).strict(),
  z
    .object({
      cardNumber: z.string().regex(/^\d{12,19}$/, 'must be 12-19 digits'),
      ...expiry,
      cardHolderName: freeText(z.string().max(255)).optional(),
    })
    .strict(),
  z.object({ tokenHref: z.string().url() }).strict(),
  z
    .object({
      dpan: z.string().regex(/^\d{12,19}$/, 'must be 12-19 digits'),
      ...expiry,
      cardHolderName: freeText(z.string().max(255)).optional(),
    })
    .strict(),
  z.object({ liquidoCardId: z.string().min(1).max(128) }).strict(),
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

/** Turn a zod failure into our ValidationError naming the first bad field. */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new ValidationError(issue.path.join('.') || 'body', issue.message);
  }
  return r.data;
}
