import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { BillingContext, FaultPoints } from './billing/context.ts';
import { dunningPolicy } from './billing/dunning/apply-policy.ts';
import type { RetryPolicy } from './billing/dunning/retry-policy.ts';
import { type Clock, systemClock } from './clock.ts';
import type { Config } from './config.ts';
import { createDatabase, type Database } from './db/client.ts';
import { migrate } from './db/migrate.ts';
import { loadDunningConfig } from './domain/dunning/index.ts';
import { liquidoGatewayFromConfig } from './gateways/liquido/index.ts';
import type { Gateway } from './gateways/types.ts';
import { worldpayGatewayFromConfig } from './gateways/worldpay/index.ts';
import { createLogger, type Logger } from './logger.ts';

export interface App extends BillingContext {
  close(): Promise<void>;
}

export async function openDatabase(
  config: Config,
  opts: { maxConnections?: number } = {},
): Promise<Database> {
  const database = await createDatabase({
    databaseUrl: config.databaseUrl,
    connectTimeoutMs: config.databaseConnectTimeoutMs,
    dataDir: config.dataDir,
    maxConnections: opts.maxConnections ?? Math.max(4, Math.min(20, config.billing.concurrency + 2)),
  });
  try {
    await migrate(database);
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}

/**
 * Wire a billing context from configuration: database (migrated), gateways (built on first
 * use, so a command that never charges needs no gateway credentials), policy, logger.
 */
export async function openApp(
  config: Config,
  opts: {
    logger?: Logger;
    clock?: Clock;
    database?: Database;
    policy?: RetryPolicy;
    faults?: FaultPoints;
    gateways?: Partial<Record<string, Gateway>>;
  } = {},
): Promise<App> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel });
  const database = opts.database ?? (await openDatabase(config));
  const built = new Map<string, Gateway>();
  const gateway = (name: string): Gateway => {
    const given = opts.gateways?.[name];
    if (given) return given;
    let gw = built.get(name);
    if (gw) return gw;
    if (name === 'worldpay') {
      gw = worldpayGatewayFromConfig(config.worldpay, logger);
    } else if (name === 'liquido') {
      gw = liquidoGatewayFromConfig(config.liquido, logger, {
        requestTimeoutMs: config.worldpay.requestTimeoutMs,
      });
    } else {
      throw new Error(`unknown gateway ${name}`);
    }
    built.set(name, gw);
    return gw;
  };
  const ownsDatabase = opts.database === undefined;
  return {
    database,
    config,
    logger,
    clock: opts.clock ?? systemClock,
    gateway,
    policy: opts.policy ?? dunningPolicy(loadDunningConfig({ file: config.billing.dunningPolicyFile })),
    workerId: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    faults: opts.faults,
    close: async () => {
      await Promise.allSettled([...built.values()].map((g) => g.close()));
      if (ownsDatabase) await database.close();
    },
  };
}
