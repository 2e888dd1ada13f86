import Fastify, { type FastifyInstance } from 'fastify';
import { controlRoutes, firstPaymentProblem, scriptRuleProblem } from './worldpay/controlRoutes.js';
import { createWorldpayGate } from './worldpay/gate.js';
import type { AccountUpdaterMode } from './worldpay/stores.js';
import type { LedgerEntry, SandboxStats, ScriptRule, WebhookOptions } from './worldpay/types.js';
import type { FirstPaymentInput, FirstPaymentMade } from './worldpay/v7.js';
import { V7_PREFIX, v7Routes } from './worldpay/v7Routes.js';
import { createWebhookSender } from './worldpay/webhookSender.js';
import { WORLDPAY_PREFIX, worldpayRoutes } from './worldpay/worldpayRoutes.js';
import { createWorldpayState } from './worldpay/worldpayState.js';

export type { AccountUpdaterMode } from './worldpay/stores.js';
export type { LedgerEntry, Outcome, SandboxStats, ScriptRule } from './worldpay/types.js';
export type { FirstPaymentInput, FirstPaymentMade } from './worldpay/v7.js';

export type SandboxPlugin = (app: FastifyInstance) => Promise<void> | void;

export interface SandboxOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
  username?: string;
  password?: string;
  latencyMs?: number;
  eventLagMs?: number;
  /** Time from a settle request until the payment reads `Settled`; 0 = at once (after `sentForSettlement`). */
  settleAfterMs?: number;
  /** Window after authorization in which a reversal becomes a cancel; default 15 min as on Worldpay. */
  reversalCancelWindowMs?: number;
  webhook?: WebhookOptions;
  /** Ledger entries kept (oldest dropped first); default 100 000. Stats count everything. */
  ledgerLimit?: number;
  rateLimit?: { requestsPerSecond: number };
  logger?: boolean;
  /**
   * Base of hrefs in responses; default the URL the sandbox listens on, never the request's
   * Host header (so `localhost` and `127.0.0.1` cannot split one link chain in two).
   */
  publicUrl?: string;
  /** Clock for event lag, settlement and reversal windows (tests pin it). Default Date.now. */
  now?: () => number;
  /** Extra route plugins mounted on the same server (e.g. the Liquido sandbox). */
  plugins?: SandboxPlugin[];
}

export interface Sandbox {
  url: string;
  close(): Promise<void>;
  /** Ledger entries with seq > since (default: every kept entry). */
  ledger(since?: number): LedgerEntry[];
  stats(): SandboxStats;
  script(rule: ScriptRule): void;
  reset(): void;
  /** Card Payments v7: a customer's first payment, as `POST /_sandbox/v7/first-payments` makes it. */
  firstPayment(input: FirstPaymentInput): FirstPaymentMade;
  /** Card Payments v7: Account Updater answers only when asked (`request`, default) or always (`managed`). */
  accountUpdater(mode: AccountUpdaterMode): void;
  /** Resolves when every webhook sent so far has been acknowledged (at once without a webhook). */
  webhooksDrained(): Promise<void>;
  /** The fastify instance, for plugins or inject() in tests. */
  app: FastifyInstance;
}

export async function startSandbox(opts: SandboxOptions = {}): Promise<Sandbox> {
  const webhook = opts.webhook ? createWebhookSender(opts.webhook) : undefined;
  const state = createWorldpayState({
    now: opts.now ?? Date.now,
    eventLagMs: opts.eventLagMs ?? 0,
    settleAfterMs: opts.settleAfterMs ?? 0,
    reversalCancelWindowMs: opts.reversalCancelWindowMs ?? 15 * 60_000,
    ledgerLimit: opts.ledgerLimit ?? 100_000,
    webhook,
  });
  const stats = () => state.stats(webhook?.stats() ?? { delivered: 0, failedAttempts: 0, pending: 0 });
  const app = Fastify({ logger: opts.logger ?? false, keepAliveTimeout: 30_000 });
  // Known once listening (port 0 picks one): the routes read it per request.
  let listenUrl: string | undefined;
  const publicUrl = () => opts.publicUrl ?? listenUrl;
  const access = {
    state,
    username: opts.username ?? 'sandbox',
    password: opts.password ?? 'sandbox',
    latencyMs: opts.latencyMs ?? 0,
    requestsPerSecond: opts.rateLimit?.requestsPerSecond,
  };
  // One gate for both card APIs: the same credentials, and one rate limit for the server.
  const gate = createWorldpayGate(access);
  await app.register(worldpayRoutes, { prefix: WORLDPAY_PREFIX, ...access, publicUrl, gate });
  await app.register(v7Routes, { prefix: V7_PREFIX, state, gate, publicUrl });
  await app.register(controlRoutes, { state, stats, publicUrl });
  for (const plugin of opts.plugins ?? []) {
    await app.register(async (child) => {
      await plugin(child);
    });
  }
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ port: opts.port ?? 0, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  listenUrl = `http://${urlHost}:${port}`;
  let closed = false;
  return {
    url: listenUrl,
    app,
    async close() {
      if (closed) return;
      closed = true;
      state.close();
      await webhook?.close();
      await app.close();
    },
    ledger: (since) => state.ledger(since),
    stats,
    script(rule) {
      const problem = scriptRuleProblem(rule);
      if (problem) throw new TypeError(`Invalid sandbox script: ${problem}`);
      state.script(rule);
    },
    firstPayment(input) {
      const problem = firstPaymentProblem(input as unknown as Record<string, unknown>);
      if (problem) throw new TypeError(`Invalid first payment: ${problem}`);
      const made = state.firstPayment(publicUrl()!, input);
      if (made.status !== 201) throw new TypeError(`First payment refused: ${JSON.stringify(made.body)}`);
      return made.body as unknown as FirstPaymentMade;
    },
    accountUpdater: (mode) => state.setAccountUpdaterMode(mode),
    reset: () => state.reset(),
    webhooksDrained: () => webhook?.drained() ?? Promise.resolve(),
  };
}
