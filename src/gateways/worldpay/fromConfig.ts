import type { Config } from '../../config.ts';
import type { Logger } from '../../logger.ts';
import { createWorldpayGateway, type WorldpayGateway } from './gateway.ts';

/** The Worldpay gateway as the WORLDPAY_* variables configure it. */
export function worldpayGatewayFromConfig(config: Config['worldpay'], logger?: Logger): WorldpayGateway {
  return createWorldpayGateway({
    url: config.url,
    username: config.username,
    password: config.password,
    entity: config.entity,
    maxInFlight: config.maxInFlight,
    requestsPerSecond: config.requestsPerSecond,
    connectTimeoutMs: config.connectTimeoutMs,
    requestTimeoutMs: config.requestTimeoutMs,
    accountUpdater: config.accountUpdater,
    ...(logger ? { logger } : {}),
  });
}
