import type { App } from '../app.ts';
import { createRunner } from '../billing/run/runner.ts';
import { startDeliveryLoop } from '../events/loop.ts';
import { createAdminServer } from '../http/server.ts';
import { createMetrics } from '../metrics.ts';
import { createDaemon, validateSchedule } from './daemon.ts';

/**
 * What `rebill daemon` and `rebill admin` run: the admin API (with the webhook and metrics),
 * and for the daemon the schedule. Resolves when a first SIGTERM/SIGINT has been handled:
 * stop ticking, let runs stop claiming and finish within the timeout, close the server. A
 * second signal exits at once; nothing is lost either way (write-ahead rows and leases let
 * the next run pick up whatever was in flight).
 */
export async function serve(app: App, opts: { schedule: boolean }): Promise<{ drained: boolean }> {
  const config = app.config;
  if (opts.schedule) validateSchedule(config.daemon.schedule);
  const metrics = createMetrics(app.database);
  app.metrics = metrics.billing;
  const runner = createRunner(app, metrics);
  const server = await createAdminServer({ ctx: app, runner, metrics });
  const url = await server.listen(config.admin.addr);
  app.logger.info({ url, schedule: opts.schedule ? config.daemon.schedule : null }, 'admin API listening');
  if (config.webhook.secrets.size === 0)
    if (config.webhook.allowUnsigned)
      app.logger.warn(
        'WORLDPAY_WEBHOOK_SECRETS is not set and WORLDPAY_WEBHOOK_ALLOW_UNSIGNED=1: webhook events are accepted without a signature check',
      );
    else
      app.logger.warn(
        'WORLDPAY_WEBHOOK_SECRETS is not set: /webhooks/worldpay answers 503 to every event until it is (or WORLDPAY_WEBHOOK_ALLOW_UNSIGNED=1)',
      );
  const daemon = opts.schedule
    ? createDaemon({
        ctx: app,
        runner,
        schedule: config.daemon.schedule,
        shutdownTimeoutMs: config.daemon.shutdownTimeoutMs,
        metrics,
      })
    : undefined;

  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    const first = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', first);
      process.off('SIGINT', first);
      const force = (again: NodeJS.Signals) => {
        app.logger.warn(
          { signal: again },
          'second signal: exiting now; leases and write-ahead rows recover the rest',
        );
        process.exit(1);
      };
      process.once('SIGTERM', force);
      process.once('SIGINT', force);
      resolve(sig);
    };
    process.on('SIGTERM', first);
    process.on('SIGINT', first);
  });
  await daemon?.start();
  // The daemon also delivers the outbox to the merchant's webhook endpoints.
  const deliveries = opts.schedule ? startDeliveryLoop(app, metrics) : undefined;
  const sig = await signalled;
  app.logger.info({ signal: sig }, 'shutting down: no new work is claimed');
  const [out] = await Promise.all([
    daemon ? daemon.stop() : runner.stop(config.daemon.shutdownTimeoutMs),
    deliveries?.stop(),
  ]);
  await server.close();
  app.logger.info({ drained: out.drained }, 'stopped');
  return out;
}
