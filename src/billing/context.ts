import type { Clock } from '../clock.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/client.ts';
import type { Gateway } from '../gateways/types.ts';
import type { Logger } from '../logger.ts';
import type { RetryPolicy } from './dunning/retry-policy.ts';

/** Everything a billing service needs, wired once by the CLI, the daemon or a test. */
export interface BillingContext {
  database: Database;
  config: Config;
  logger: Logger;
  clock: Clock;
  gateway(name: string): Gateway;
  policy: RetryPolicy;
  /** Identity of this worker for leases (host:pid:random). */
  workerId: string;
  /** Hooks a test or the soak uses to crash at a precise point. Never set in production. */
  faults?: FaultPoints;
  /** Metrics sink, set by the daemon. */
  metrics?: BillingMetrics;
}

export type FaultPoint =
  | 'after-write-ahead'
  | 'after-launch'
  | 'after-authorize'
  | 'after-outcome'
  | 'after-settle-request';

export interface FaultPoints {
  hit(point: FaultPoint, info: { chargeId: number; reference: string }): void | Promise<void>;
}

export interface BillingMetrics {
  attempt(outcome: string, gateway: string, refusalCode?: string): void;
  gatewayLatency(op: string, seconds: number): void;
  leaseTakeover(): void;
}
