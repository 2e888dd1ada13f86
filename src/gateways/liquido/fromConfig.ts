import type { Logger } from 'pino';
import { type Config, ConfigError } from '../../config.ts';
import type { Gateway } from '../types.ts';
import { createLiquidoGateway } from './gateway.ts';

/**
 * The Liquido gateway as configured by LIQUIDO_* variables. Credentials are checked when the
 * gateway is first used, not when it is built, so a deployment that never charges a Liquido
 * mandate does not need them; the first Liquido charge without them fails with a ConfigError
 * naming the missing variable (and nothing is sent).
 */
export function liquidoGatewayFromConfig(
  config: Config['liquido'],
  logger: Logger,
  extra: { requestTimeoutMs?: number; maxInFlight?: number; callbackUrl?: string; now?: () => Date } = {},
): Gateway {
  let inner: Gateway | undefined;

  function gateway(): Gateway {
    if (inner !== undefined) return inner;
    const missing = (
      [
        ['LIQUIDO_CLIENT_ID', config.clientId],
        ['LIQUIDO_CLIENT_SECRET', config.clientSecret],
        ['LIQUIDO_API_KEY', config.apiKey],
      ] as const
    ).find(([, value]) => value === undefined || value === '');
    if (missing !== undefined) {
      throw new ConfigError(missing[0], 'is required to charge a Liquido mandate (or set it via _FILE)');
    }
    inner = createLiquidoGateway({
      url: config.url,
      clientId: config.clientId!,
      clientSecret: config.clientSecret!,
      apiKey: config.apiKey!,
      subMerchantId: config.subMerchantId,
      country: config.country,
      logger,
      ...extra,
    });
    return inner;
  }

  return {
    name: 'liquido',
    authorize: async (req) => gateway().authorize(req),
    action: async (req) => gateway().action(req),
    query: async (payment) => gateway().query(payment),
    queryByReference: async (reference, entity) => gateway().queryByReference(reference, entity),
    async close() {
      await inner?.close();
    },
  };
}
