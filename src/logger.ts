import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs. Anything that could carry card data or credentials is redacted by
 * path, whatever the caller put in the log object.
 */
export const redactPaths = [
  'cardNumber',
  '*.cardNumber',
  '*.*.cardNumber',
  '*.*.*.cardNumber',
  'dpan',
  '*.dpan',
  '*.*.dpan',
  '*.*.*.dpan',
  'card_number',
  '*.card_number',
  'password',
  '*.password',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
  'clientSecret',
  '*.clientSecret',
  'client_secret',
  'access_token',
  '*.access_token',
  'apiKey',
  '*.apiKey',
  'encryptedPan',
  '*.encryptedPan',
];

export function createLogger(
  opts: { level?: string; destination?: pino.DestinationStream; base?: Record<string, unknown> } = {},
): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: opts.base ?? { service: 'rebill' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
