import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { RebillError } from '../../errors.ts';
import { ADVICE_CODES, type CodeRule, type CodeTable, normaliseAdviceCode, REFUSAL_CODES } from './codes.ts';

/**
 * Dunning policy settings. Defaults are the product's opinion; an operator overrides them with a
 * JSON or YAML file (named by REBILL_DUNNING_POLICY_FILE) without a code change, including the
 * category of any refusal or advice code.
 */

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** Visa: at most 15 reattempts in 30 days per card before fees; never configurable above. */
export const SCHEME_MAX_REATTEMPTS_PER_30_DAYS = 15;
/** Mastercard (US/Canada): fees beyond 20 declines on a card in 24 hours. */
export const SCHEME_MAX_DECLINES_PER_24H = 20;

export type SubscriptionFinalAction = 'pause' | 'cancel';
export type InstalmentFinalAction = 'carry_arrears' | 'stop';
export type UnscheduledFinalAction = 'fail';
export type FinalAction = SubscriptionFinalAction | InstalmentFinalAction | UnscheduledFinalAction;
export type Intent = 'subscription' | 'instalment' | 'unscheduled';

export interface DunningConfig {
  /** Retry offsets from the FIRST refusal of the charge; its length is the number of retries. */
  readonly scheduleMs: readonly number[];
  /** Deterministic per charge and retry, in [0, jitterMs): a large run does not retry all at once. */
  readonly jitterMs: number;
  /** A retry is never sooner than this after the refusal it answers (a slot already past does not mean "now"). */
  readonly minRetryGapMs: number;
  /** Retries must happen within this long after the first refusal; later means the charge fails. */
  readonly retryWindowMs: number;
  /** Backoff after consecutive gateway errors (5xx/timeouts reconciled as "did not happen"). */
  readonly gatewayBackoffMs: readonly number[];
  readonly maxReattemptsPer30Days: number;
  readonly maxDeclinesPer24h: number;
  readonly finalAction: {
    readonly subscription: SubscriptionFinalAction;
    readonly instalment: InstalmentFinalAction;
    readonly unscheduled: UnscheduledFinalAction;
  };
  readonly codes: CodeTable;
  readonly adviceCodes: CodeTable;
  /** Things the loader changed or noticed (e.g. a cap clamped to the scheme limit); log them at start-up. */
  readonly warnings: readonly string[];
}

export const DEFAULT_DUNNING_CONFIG: DunningConfig = Object.freeze<DunningConfig>({
  scheduleMs: [1 * DAY, 3 * DAY, 5 * DAY, 7 * DAY],
  jitterMs: 2 * HOUR,
  minRetryGapMs: 1 * DAY,
  retryWindowMs: 30 * DAY,
  gatewayBackoffMs: [5 * MINUTE, 15 * MINUTE, 1 * HOUR, 4 * HOUR, 12 * HOUR],
  maxReattemptsPer30Days: SCHEME_MAX_REATTEMPTS_PER_30_DAYS,
  maxDeclinesPer24h: 10,
  finalAction: { subscription: 'pause', instalment: 'carry_arrears', unscheduled: 'fail' },
  codes: REFUSAL_CODES,
  adviceCodes: ADVICE_CODES,
  warnings: [],
});

/**
 * A dunning policy that cannot be used as written. Its kind is the root's (a 500 whose message
 * stays inside, exit code 1), under its own code.
 */
export class DunningConfigError extends RebillError {
  static override readonly type: string = 'DunningConfigError';
  static override readonly code: string = 'config_error';
  constructor(
    /** Dotted path of the offending key, e.g. `codes.51.category`. */
    readonly key: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`dunning policy: ${key}: ${message}`, options);
  }
}

const durationPattern = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const unitMs: Record<string, number> = { ms: 1, s: 1000, m: MINUTE, h: HOUR, d: DAY };

/** Durations are written with a unit ("90m", "36h", "3d") so nobody guesses whether 3 means hours or days. */
export function parseDuration(text: string): number {
  const match = durationPattern.exec(text.trim());
  if (!match) throw new Error(`not a duration: ${text}`);
  return Math.round(Number(match[1]) * unitMs[match[2]!]!);
}

const duration = z
  .string()
  .regex(durationPattern, { message: 'must be a duration like "90m", "36h" or "3d"' });

const ruleOverride = z.strictObject({
  category: z.enum(['soft', 'needs_new_credential', 'stop']),
  reason: z.string().min(1).max(300).optional(),
  visaCategory: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4)]).optional(),
  blocksCredential: z.boolean().optional(),
  minWait: duration.optional(),
});

const overridesSchema = z.strictObject({
  schedule: z.array(duration).min(1).max(30).optional(),
  jitter: duration.optional(),
  minRetryGap: duration.optional(),
  retryWindow: duration.optional(),
  gatewayBackoff: z.array(duration).min(1).max(30).optional(),
  maxReattemptsPer30Days: z.number().int().min(0).optional(),
  maxDeclinesPer24h: z.number().int().min(1).optional(),
  finalAction: z
    .strictObject({
      subscription: z.enum(['pause', 'cancel']).optional(),
      instalment: z.enum(['carry_arrears', 'stop']).optional(),
      unscheduled: z.literal('fail').optional(),
    })
    .optional(),
  codes: z.record(z.string().min(1).max(20), ruleOverride).optional(),
  adviceCodes: z.record(z.string().min(1).max(20), ruleOverride).optional(),
});

export type DunningOverrides = z.input<typeof overridesSchema>;

/** Validate an already-parsed override object and merge it over the defaults. */
export function dunningConfigFrom(raw: unknown, base: DunningConfig = DEFAULT_DUNNING_CONFIG): DunningConfig {
  const result = overridesSchema.safeParse(raw ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
    // zod names an unknown key in `keys`, not in `path`: surface it as the bad key.
    const unknownKeys = 'keys' in issue && Array.isArray(issue.keys) ? issue.keys.map(String) : [];
    const named =
      unknownKeys.length > 0 ? [key === '(root)' ? '' : key, unknownKeys[0]].filter(Boolean).join('.') : key;
    throw new DunningConfigError(named, issue.message);
  }
  const o = result.data;
  const warnings: string[] = [];
  const scheduleMs = o.schedule ? o.schedule.map(parseDuration) : base.scheduleMs;
  for (let i = 1; i < scheduleMs.length; i++) {
    if (scheduleMs[i]! <= scheduleMs[i - 1]!) {
      throw new DunningConfigError(`schedule.${i}`, 'offsets must increase');
    }
  }
  const retryWindowMs = o.retryWindow ? parseDuration(o.retryWindow) : base.retryWindowMs;
  if (scheduleMs[scheduleMs.length - 1]! > retryWindowMs) {
    throw new DunningConfigError('schedule', 'the last offset is beyond retryWindow');
  }
  let maxReattempts = o.maxReattemptsPer30Days ?? base.maxReattemptsPer30Days;
  if (maxReattempts > SCHEME_MAX_REATTEMPTS_PER_30_DAYS) {
    warnings.push(
      `maxReattemptsPer30Days ${maxReattempts} clamped to the scheme limit ${SCHEME_MAX_REATTEMPTS_PER_30_DAYS}`,
    );
    maxReattempts = SCHEME_MAX_REATTEMPTS_PER_30_DAYS;
  }
  let maxDeclines = o.maxDeclinesPer24h ?? base.maxDeclinesPer24h;
  if (maxDeclines > SCHEME_MAX_DECLINES_PER_24H) {
    warnings.push(
      `maxDeclinesPer24h ${maxDeclines} clamped to the scheme limit ${SCHEME_MAX_DECLINES_PER_24H}`,
    );
    maxDeclines = SCHEME_MAX_DECLINES_PER_24H;
  }
  return Object.freeze({
    scheduleMs,
    jitterMs: o.jitter ? parseDuration(o.jitter) : base.jitterMs,
    minRetryGapMs: o.minRetryGap ? parseDuration(o.minRetryGap) : base.minRetryGapMs,
    retryWindowMs,
    gatewayBackoffMs: o.gatewayBackoff ? o.gatewayBackoff.map(parseDuration) : base.gatewayBackoffMs,
    maxReattemptsPer30Days: maxReattempts,
    maxDeclinesPer24h: maxDeclines,
    finalAction: { ...base.finalAction, ...stripUndefined(o.finalAction ?? {}) },
    codes: mergeTable(base.codes, o.codes, (c) => c.trim()),
    adviceCodes: mergeTable(base.adviceCodes, o.adviceCodes, normaliseAdviceCode),
    warnings: [...base.warnings, ...warnings],
  });
}

type RuleOverride = z.output<typeof ruleOverride>;

function mergeTable(
  base: CodeTable,
  overrides: Record<string, RuleOverride> | undefined,
  normalise: (code: string) => string,
): CodeTable {
  if (!overrides) return base;
  const table: Record<string, CodeRule> = { ...base };
  for (const [rawCode, o] of Object.entries(overrides)) {
    const code = normalise(rawCode);
    const previous = Object.hasOwn(base, code) ? base[code] : undefined;
    const rule: CodeRule = {
      ...(previous ?? {}),
      category: o.category,
      reason: o.reason ?? `${previous?.reason ?? 'configured code'} (category set by the policy file)`,
    };
    table[code] = {
      ...rule,
      ...(o.visaCategory !== undefined ? { visaCategory: o.visaCategory } : {}),
      ...(o.blocksCredential !== undefined ? { blocksCredential: o.blocksCredential } : {}),
      ...(o.minWait !== undefined ? { minWaitMs: parseDuration(o.minWait) } : {}),
    };
  }
  return Object.freeze(table);
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export const DUNNING_POLICY_FILE_ENV = 'REBILL_DUNNING_POLICY_FILE';

/**
 * Load the policy: defaults, overridden by `file` (or the file named by REBILL_DUNNING_POLICY_FILE
 * in `env`). `.yaml`/`.yml` parse as YAML, anything else as JSON. Errors name the bad key.
 */
export function loadDunningConfig(
  source: { file?: string; env?: Record<string, string | undefined> } = {},
): DunningConfig {
  const envFile = source.env?.[DUNNING_POLICY_FILE_ENV];
  const file = source.file ?? (envFile !== undefined && envFile !== '' ? envFile : undefined);
  if (file === undefined) return DEFAULT_DUNNING_CONFIG;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DunningConfigError(
      source.file !== undefined ? 'file' : DUNNING_POLICY_FILE_ENV,
      `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    );
  }
  let raw: unknown;
  try {
    const ext = extname(file).toLowerCase();
    raw = ext === '.yaml' || ext === '.yml' ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new DunningConfigError(
      '(file)',
      `${file} is not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}`,
      {
        cause: err,
      },
    );
  }
  return dunningConfigFrom(raw);
}
