import { type Command, InvalidArgumentError } from 'commander';

// `rebill sandbox`: runs the Worldpay sandbox in the foreground until SIGINT/SIGTERM.

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

interface SandboxCommandOptions {
  port: number;
  host: string;
  username: string;
  password: string;
  latencyMs: number;
  eventLagMs: number;
  settleAfterMs: number;
  rateLimit?: number;
  webhookUrl?: string;
  webhookSecret?: string;
  webhookKeyId?: string;
  log?: boolean;
}

export function registerSandboxCommand(program: Command): Command {
  return program
    .command('sandbox')
    .description(
      'Run the built-in Worldpay and Liquido sandbox (Try-like: rotating links, events, scripted outcomes; POST /_sandbox/verifications for a recurring link). Card Payments v7 too: POST /cardPayments/merchantInitiatedTransactions, POST /_sandbox/v7/first-payments for a token and scheme reference, scripts matched by cardNumber/tokenHref/networkToken with accountUpdater answers, POST /_sandbox/v7/account-updater {mode: request|managed}',
    )
    .option('--port <n>', 'port to listen on (0 = random)', nonNegativeInt, 8787)
    .option('--host <h>', 'address to bind', '127.0.0.1')
    .option('--username <u>', 'Basic auth username', 'sandbox')
    .option('--password <p>', 'Basic auth password', 'sandbox')
    .option('--latency-ms <n>', 'delay added to every Worldpay request', nonNegativeInt, 0)
    .option('--event-lag-ms <n>', 'how long the events query lags behind a change', nonNegativeInt, 0)
    .option('--settle-after-ms <n>', 'time from settle request to Settled', nonNegativeInt, 0)
    .option('--rate-limit <n>', 'requests per second before answering 429', nonNegativeInt)
    .option('--webhook-url <u>', 'deliver payment events to this URL')
    .option('--webhook-secret <s>', 'HMAC secret for the Event-Signature header')
    .option('--webhook-key-id <id>', 'key id in the Event-Signature header', '1')
    .option('--log', 'log every request')
    .action(async (options: SandboxCommandOptions) => {
      // Loaded here, not at the top: the other commands do not pay for the HTTP server.
      const [{ startSandbox }, { liquidoSandbox }] = await Promise.all([
        import('./server.ts'),
        import('./liquido/index.ts'),
      ]);
      if ((options.webhookUrl === undefined) !== (options.webhookSecret === undefined)) {
        throw new InvalidArgumentError('--webhook-url and --webhook-secret go together');
      }
      const sandbox = await startSandbox({
        // The same server speaks Liquido's API (default sandbox credentials) beside Worldpay's.
        plugins: [liquidoSandbox({ latencyMs: options.latencyMs })],
        port: options.port,
        host: options.host,
        username: options.username,
        password: options.password,
        latencyMs: options.latencyMs,
        eventLagMs: options.eventLagMs,
        settleAfterMs: options.settleAfterMs,
        rateLimit: options.rateLimit !== undefined ? { requestsPerSecond: options.rateLimit } : undefined,
        webhook:
          options.webhookUrl !== undefined && options.webhookSecret !== undefined
            ? { url: options.webhookUrl, secret: options.webhookSecret, keyId: options.webhookKeyId }
            : undefined,
        logger: options.log ?? false,
      });
      const lines = [
        `Worldpay sandbox listening on ${sandbox.url}`,
        `  payments root:   GET  ${sandbox.url}/payments  (Basic auth ${options.username}:***)`,
        `  verification:    POST ${sandbox.url}/_sandbox/verifications  {cardNumber?, cardHolderName?}`,
        `  script outcomes: POST ${sandbox.url}/_sandbox/script  {match:{chainId|transactionReference|cardNumber|tokenHref|networkToken|any, op?}, outcomes:[...]}`,
        `  v7 charges:      POST ${sandbox.url}/cardPayments/merchantInitiatedTransactions  (application/vnd.worldpay.payments-v7+json)`,
        `  v7 first pay:    POST ${sandbox.url}/_sandbox/v7/first-payments  {cardNumber, expiryMonth, expiryYear, cardHolderName?, networkToken?}`,
        `  account updater: POST ${sandbox.url}/_sandbox/v7/account-updater  {mode: 'request'|'managed'}  (scripts: outcome.accountUpdater)`,
        `  ledger + stats:  GET  ${sandbox.url}/_sandbox/ledger`,
        `  paypal payment:  POST ${sandbox.url}/_sandbox/paypal  {amount?, currency?, lastEvent?: 'authorized'}`,
        `  paypal event:    POST ${sandbox.url}/_sandbox/paypal/events  {href, lastEvent}`,
        `  dispute event:   POST ${sandbox.url}/_sandbox/disputes  {transactionReference, type: chargedBack|informationRequested, amount?, reasonCode?, reason?}`,
        `  reset:           POST ${sandbox.url}/_sandbox/reset`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      await sandbox.close();
      process.stdout.write('Worldpay sandbox stopped\n');
    });
}
