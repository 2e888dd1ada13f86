import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_MAX_AMOUNT_MAJOR } from './domain/money.ts';
import { exitCodes, RebillError } from './errors.ts';

/**
 * Configuration comes from the environment only. Secrets may instead be given as a path in
 * `NAME_FILE`; the file's contents (trailing newline trimmed) win over `NAME`.
 * Every variable is validated at start-up and a bad one is reported by name.
 */

/**
 * rebill is not set up for this: a bad variable at start, or one missing when work needs it (no
 * encryption key for stored card data, no Liquido credentials). Nothing about the customer or
 * the card: billing defers the work and never changes a mandate's business state for it.
 */
export class ConfigError extends RebillError {
  static override readonly type: string = 'ConfigError';
  static override readonly exitCode: number = exitCodes.invalid;
  static override readonly code: string = 'config';
  /** A 500 (the server is not set up), whose message names the variable for the operator. */
  static override readonly exposed: boolean = true;
  constructor(
    readonly variable: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${variable}: ${message}`, options);
  }
}

type Env = Record<string, string | undefined>;

function readSecret(env: Env, name: string): string | undefined {
  const file = env[`${name}_FILE`];
  if (file !== undefined && file !== '') {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new ConfigError(
        `${name}_FILE`,
        `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
  }
  const value = env[name];
  return value === '' ? undefined : value;
}

function parse<T>(env: Env, name: string, schema: z.ZodType<T>, raw?: string | undefined): T {
  const value = raw !== undefined ? raw : env[name] === '' ? undefined : env[name];
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new ConfigError(name, issue?.message ?? 'invalid value');
  }
  return result.data;
}

const intIn = (min: number, max: number, def: number) =>
  z.coerce
    .number({ message: 'must be a number' })
    .int({ message: 'must be an integer' })
    .min(min, { message: `must be >= ${min}` })
    .max(max, { message: `must be <= ${max}` })
    .default(def);

const url = (def?: string) => {
  const s = z.url({ message: 'must be an absolute http(s) URL' }).refine((v) => /^https?:\/\//.test(v), {
    message: 'must be an http(s) URL',
  });
  return def === undefined ? s.optional() : s.default(def);
};

/** A yes/no switch: 1/true/yes or 0/false/no (unset: no). */
const flag = z
  .enum(['0', '1', 'true', 'false', 'yes', 'no'], { message: 'must be 1 or 0 (true/false, yes/no)' })
  .optional()
  .transform((v) => v === '1' || v === 'true' || v === 'yes');

/** `500ms`, `10s`, `5m`, `2h`, `3d` in milliseconds, or null. */
export function parseDuration(text: string): number | null {
  const m = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text);
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Number(m[1]) * unit;
}

const duration = (def: string) =>
  z
    .string()
    .default(def)
    .transform((v, ctx) => {
      const ms = parseDuration(v.trim());
      if (ms === null || ms <= 0) {
        ctx.addIssue({ code: 'custom', message: 'must be a duration like 3d, 12h, 30m or 10s' });
        return z.NEVER;
      }
      return ms;
    });

const entity = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ]{0,31}$/, { message: 'must be 1-32 letters, digits or spaces' });

/** How long a connection to PostgreSQL may take before the request that needs it fails (503). */
export const DEFAULT_DB_CONNECT_TIMEOUT_MS = 3000;

export const CHARGEBACK_POLICIES = ['pause', 'notify'] as const;
export type ChargebackPolicy = (typeof CHARGEBACK_POLICIES)[number];
export const ACCOUNT_UPDATER_MODES = ['off', 'request', 'managed'] as const;
export type AccountUpdaterMode = (typeof ACCOUNT_UPDATER_MODES)[number];

export interface Config {
  databaseUrl: string | undefined;
  /** How long a connection to PostgreSQL may take to open; a request that needs it fails then. */
  databaseConnectTimeoutMs: number;
  dataDir: string;
  logLevel: string;
  worldpay: {
    url: string;
    username: string | undefined;
    password: string | undefined;
    entity: string;
    maxInFlight: number;
    requestsPerSecond: number;
    connectTimeoutMs: number;
    requestTimeoutMs: number;
    /**
     * Worldpay's Account Updater on Card Payments v7 charges: `off` (updates in answers are not
     * applied), `request` (each charge asks for one: `instruction.requestAccountUpdater`) or
     * `managed` (Worldpay updates the cards on its own; the request is unchanged). In both
     * on-modes an answer's `updatedPaymentInstrument` updates the credential.
     */
    accountUpdater: AccountUpdaterMode;
  };
  liquido: {
    url: string;
    clientId: string | undefined;
    clientSecret: string | undefined;
    apiKey: string | undefined;
    subMerchantId: string | undefined;
    country: string;
  };
  billing: {
    referencePrefix: string;
    batchSize: number;
    concurrency: number;
    leaseSeconds: number;
    eventLagMinutes: number;
    dunningPolicyFile: string | undefined;
    /** A run that creates at least this many charges refreshes the charges table's statistics (0: never). */
    analyzeAfterRows: number;
    /** Runs may bill for instants ahead of the wall clock (tests, demos, simulations). */
    allowFutureRuns: boolean;
    /** At most this many missed cycles of one mandate are charged when catching up; older ones are skipped. */
    maxCatchUpCycles: number;
    /** The largest single charge, in major units of its currency. */
    maxAmount: number;
  };
  encryptionKey: Buffer | undefined;
  admin: {
    addr: string;
    tokens: string[];
    /** Failed authentications a client may make per minute before it gets 429 (0: no limit). */
    authFailuresPerMinute: number;
  };
  daemon: {
    schedule: string;
    shutdownTimeoutMs: number;
  };
  events: {
    /** Delivered events older than this are pruned by the daemon. */
    retentionDays: number;
    /** credential.expiring is sent this many days before the due charge the card expires before. */
    expiryNoticeDays: number;
    /** Waits between delivery attempts (ms); the last one repeats until giveUpAfterMs. */
    webhookRetrySchedule: number[];
    webhookGiveUpAfterMs: number;
    webhookPollMs: number;
    webhookTimeoutMs: number;
    /** http:// endpoints, and loopback or private addresses (tests, sandboxes). */
    webhookAllowInsecure: boolean;
  };
  webhook: {
    secrets: Map<string, string>;
    /** Accept unsigned events when no secret is configured (sandboxes, tests); off by default. */
    allowUnsigned: boolean;
    /**
     * What a chargeback does beside its dispute record and events: `pause` the card's other
     * active mandates (reason `chargeback`) until an operator resumes them, or only `notify`.
     */
    chargebackPolicy: ChargebackPolicy;
  };
}

function parseKey(name: string, raw: string | undefined): Buffer | undefined {
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  const buf = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : Buffer.from(trimmed, 'base64');
  if (buf.length !== 32) {
    throw new ConfigError(name, 'must be 32 bytes, given as 64 hex characters or base64');
  }
  return buf;
}

function parseWebhookSecrets(raw: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === undefined) return out;
  // "keyId:secret,keyId:secret" or a bare secret (key id "1").
  for (const part of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const i = part.indexOf(':');
    if (i <= 0) {
      if (raw.includes(','))
        throw new ConfigError('WORLDPAY_WEBHOOK_SECRETS', 'each entry must be keyId:secret');
      out.set('1', part);
    } else out.set(part.slice(0, i), part.slice(i + 1));
  }
  return out;
}

export function loadConfig(env: Env = process.env): Config {
  const tokens = readSecret(env, 'REBILL_ADMIN_TOKENS');
  return {
    databaseUrl: parse(
      env,
      'DATABASE_URL',
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, { message: 'must be a postgres:// or postgresql:// URL' })
        .optional(),
      readSecret(env, 'DATABASE_URL'),
    ),
    databaseConnectTimeoutMs: parse(
      env,
      'REBILL_DB_CONNECT_TIMEOUT_MS',
      intIn(100, 120_000, DEFAULT_DB_CONNECT_TIMEOUT_MS),
    ),
    dataDir: parse(env, 'REBILL_DATA_DIR', z.string().default('./.rebill')),
    logLevel: parse(
      env,
      'REBILL_LOG_LEVEL',
      z
        .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
          message: 'must be one of fatal, error, warn, info, debug, trace, silent',
        })
        .default('info'),
    ),
    worldpay: {
      url: parse(env, 'WORLDPAY_URL', url('https://try.access.worldpay.com')) as string,
      username: readSecret(env, 'WORLDPAY_USERNAME'),
      password: readSecret(env, 'WORLDPAY_PASSWORD'),
      entity: parse(env, 'WORLDPAY_ENTITY', entity.default('default')),
      maxInFlight: parse(env, 'WORLDPAY_MAX_IN_FLIGHT', intIn(1, 10_000, 64)),
      requestsPerSecond: parse(env, 'WORLDPAY_RPS', intIn(0, 1_000_000, 0)),
      connectTimeoutMs: parse(env, 'WORLDPAY_CONNECT_TIMEOUT_MS', intIn(100, 120_000, 5_000)),
      requestTimeoutMs: parse(env, 'WORLDPAY_TIMEOUT_MS', intIn(100, 300_000, 30_000)),
      accountUpdater: parse(
        env,
        'WORLDPAY_ACCOUNT_UPDATER',
        z.enum(ACCOUNT_UPDATER_MODES, { message: 'must be off, request or managed' }).default('off'),
      ),
    },
    liquido: {
      url: parse(env, 'LIQUIDO_URL', url('https://api-qa.liquido.com')) as string,
      clientId: readSecret(env, 'LIQUIDO_CLIENT_ID'),
      clientSecret: readSecret(env, 'LIQUIDO_CLIENT_SECRET'),
      apiKey: readSecret(env, 'LIQUIDO_API_KEY'),
      subMerchantId: parse(env, 'LIQUIDO_SUB_MERCHANT_ID', z.string().optional()),
      country: parse(
        env,
        'LIQUIDO_COUNTRY',
        z
          .string()
          .regex(/^[A-Z]{2}$/, { message: 'must be an ISO 3166 alpha-2 code' })
          .default('PE'),
      ),
    },
    billing: {
      referencePrefix: parse(
        env,
        'REBILL_REFERENCE_PREFIX',
        z
          .string()
          .regex(/^[A-Za-z0-9]{1,12}$/, { message: 'must be 1-12 letters or digits' })
          .default('rb'),
      ),
      batchSize: parse(env, 'REBILL_BATCH_SIZE', intIn(1, 10_000, 500)),
      concurrency: parse(env, 'REBILL_CONCURRENCY', intIn(1, 10_000, 32)),
      leaseSeconds: parse(env, 'REBILL_LEASE_SECONDS', intIn(5, 3600, 120)),
      eventLagMinutes: parse(env, 'REBILL_EVENT_LAG_MINUTES', intIn(0, 1440, 15)),
      dunningPolicyFile: parse(env, 'REBILL_DUNNING_POLICY_FILE', z.string().optional()),
      analyzeAfterRows: parse(env, 'REBILL_ANALYZE_AFTER_ROWS', intIn(0, 1_000_000_000, 1_000)),
      allowFutureRuns: parse(env, 'REBILL_ALLOW_FUTURE_RUNS', flag),
      maxCatchUpCycles: parse(env, 'REBILL_MAX_CATCH_UP_CYCLES', intIn(1, 1000, 3)),
      maxAmount: parse(env, 'REBILL_MAX_AMOUNT', intIn(1, 1_000_000_000, DEFAULT_MAX_AMOUNT_MAJOR)),
    },
    encryptionKey: parseKey('REBILL_ENCRYPTION_KEY', readSecret(env, 'REBILL_ENCRYPTION_KEY')),
    admin: {
      addr: parse(
        env,
        'REBILL_ADMIN_ADDR',
        z
          .string()
          .regex(/^[^:\s]+:\d{1,5}$/, { message: 'must be host:port' })
          .default('127.0.0.1:8080'),
      ),
      tokens: (tokens ?? '')
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
      authFailuresPerMinute: parse(env, 'REBILL_ADMIN_AUTH_FAILURES_PER_MINUTE', intIn(0, 1_000_000, 20)),
    },
    daemon: {
      schedule: parse(env, 'REBILL_CRON', z.string().default('* * * * *')),
      shutdownTimeoutMs: parse(env, 'REBILL_SHUTDOWN_TIMEOUT_MS', intIn(0, 600_000, 30_000)),
    },
    events: {
      retentionDays: parse(env, 'REBILL_EVENT_RETENTION_DAYS', intIn(1, 36_500, 30)),
      expiryNoticeDays: parse(env, 'REBILL_EXPIRY_NOTICE_DAYS', intIn(0, 365, 14)),
      webhookRetrySchedule: parse(
        env,
        'REBILL_WEBHOOK_RETRY_SCHEDULE',
        z
          .string()
          .default('1m,5m,30m,2h,6h,12h')
          .transform((v, ctx) => {
            const steps = v.split(',').map((p) => parseDuration(p.trim()));
            if (steps.some((d) => d === null || d <= 0)) {
              ctx.addIssue({
                code: 'custom',
                message: 'must be durations like 1m,5m,30m,2h (ms, s, m, h, d)',
              });
              return z.NEVER;
            }
            return steps as number[];
          }),
      ),
      webhookGiveUpAfterMs: parse(env, 'REBILL_WEBHOOK_GIVE_UP_AFTER', duration('3d')),
      webhookPollMs: parse(env, 'REBILL_WEBHOOK_POLL_MS', intIn(10, 3_600_000, 1000)),
      webhookTimeoutMs: parse(env, 'REBILL_WEBHOOK_TIMEOUT_MS', intIn(100, 60_000, 10_000)),
      webhookAllowInsecure: parse(env, 'REBILL_WEBHOOK_ALLOW_INSECURE', flag),
    },
    webhook: {
      secrets: parseWebhookSecrets(readSecret(env, 'WORLDPAY_WEBHOOK_SECRETS')),
      allowUnsigned: parse(env, 'WORLDPAY_WEBHOOK_ALLOW_UNSIGNED', flag),
      chargebackPolicy: parse(
        env,
        'REBILL_CHARGEBACK_POLICY',
        z.enum(CHARGEBACK_POLICIES, { message: 'must be one of pause, notify' }).default('pause'),
      ),
    },
  };
}
