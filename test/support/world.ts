import { request } from 'undici';
import { type App, openApp } from '../../src/app.ts';
import type { RetryPolicy } from '../../src/billing/dunning/retry-policy.ts';
import { fixedClock } from '../../src/clock.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/logger.ts';
import {
  LIQUIDO_SANDBOX_DEFAULTS,
  type LiquidoSandboxPlugin,
  liquidoSandbox,
} from '../../src/sandbox/liquido/index.ts';
import { type Sandbox, type SandboxOptions, startSandbox } from '../../src/sandbox/server.ts';
import { type TestDatabase, testDatabase } from './db.ts';

export const TEST_KEY = '0f'.repeat(32);

/** A sandbox, a database of this file's own and an app wired to both. */
export interface World {
  sandbox: Sandbox;
  /** The Liquido side of the same sandbox server. */
  liquido: LiquidoSandboxPlugin;
  t: TestDatabase;
  config: Config;
  env: Record<string, string>;
  /** An app whose clock is pinned to `at`. */
  app(at: Date, opts?: { policy?: RetryPolicy }): Promise<App>;
  /** A customer-initiated verification at the sandbox: the first recurring link of a new chain. */
  verify(body?: Record<string, unknown>): Promise<{ chainId: string; href: string }>;
  close(): Promise<void>;
}

export async function startWorld(
  opts: { sandbox?: SandboxOptions; env?: Record<string, string>; maxConnections?: number } = {},
): Promise<World> {
  const liquido = liquidoSandbox();
  const sandbox = await startSandbox({ port: 0, plugins: [liquido], ...opts.sandbox });
  const t = await testDatabase({ maxConnections: opts.maxConnections ?? 10 });
  const env: Record<string, string> = {
    WORLDPAY_URL: sandbox.url,
    WORLDPAY_USERNAME: 'sandbox',
    WORLDPAY_PASSWORD: 'sandbox',
    WORLDPAY_ENTITY: 'default',
    REBILL_EVENT_LAG_MINUTES: '0',
    // Simulated time: runs are asked for days and months ahead of the wall clock.
    REBILL_ALLOW_FUTURE_RUNS: '1',
    REBILL_ENCRYPTION_KEY: TEST_KEY,
    REBILL_LOG_LEVEL: 'silent',
    WORLDPAY_TIMEOUT_MS: '2000',
    LIQUIDO_URL: sandbox.url,
    LIQUIDO_CLIENT_ID: LIQUIDO_SANDBOX_DEFAULTS.clientId,
    LIQUIDO_CLIENT_SECRET: LIQUIDO_SANDBOX_DEFAULTS.clientSecret,
    LIQUIDO_API_KEY: LIQUIDO_SANDBOX_DEFAULTS.apiKey,
    ...(t.url ? { DATABASE_URL: t.url } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const apps: App[] = [];
  return {
    sandbox,
    liquido,
    t,
    config,
    env,
    async app(at, o = {}) {
      const a = await openApp(config, {
        database: t.database,
        clock: fixedClock(at),
        logger: silentLogger,
        ...(o.policy ? { policy: o.policy } : {}),
      });
      apps.push(a);
      return a;
    },
    async verify(body = {}) {
      const res = await request(`${sandbox.url}/_sandbox/verifications`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return (await res.body.json()) as { chainId: string; href: string };
    },
    async close() {
      for (const a of apps) await a.close();
      await t.dispose();
      await sandbox.close();
    },
  };
}
