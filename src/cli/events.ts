import { type Command, Option } from 'commander';
import { InvalidRequestError } from '../errors.ts';
import { createDeliverer } from '../events/deliver.ts';
import {
  createEndpoint,
  DELIVERY_STATES,
  getEndpoint,
  listDeliveries,
  listEndpoints,
  removeEndpoint,
  resendDelivery,
  rotateSecret,
  testEndpoint,
  updateEndpoint,
} from '../events/endpoints.ts';
import { type EventView, getEvent, listEvents, pruneEvents } from '../events/sequence.ts';
import { eventTypes } from '../events/types.ts';
import type { CliDeps } from './deps.ts';
import { CURSOR, ID, idArg, intOption, PAGE_SIZE, printJson, table } from './output.ts';
import { renamedOption } from './vocabulary.ts';

const eventRow = (e: EventView) => [
  e.id,
  e.createdAt,
  e.type,
  e.mandateId,
  e.customerRef,
  String(
    (e.data as { state?: string; status?: string }).state ?? (e.data as { status?: string }).status ?? '',
  ),
];

export function registerEventCommands(program: Command, deps: CliDeps): void {
  const events = program.command('events').description('The event log (what the webhooks deliver)');
  const list = events
    .command('list')
    .description(
      'The event log with each payload, newest first; --after (a cursor, 0 for the start) reads oldest first, --follow keeps polling for new ones',
    )
    .option('--after <id>', 'only events after this id (the cursor)', intOption('--after', CURSOR))
    .option(
      '--before <id>',
      'only events before this id (the next page, newest first)',
      intOption('--before', ID),
    )
    .addOption(
      new Option(
        '--order <order>',
        'newest first (desc) or oldest first (asc); default desc, asc with --after',
      ).choices(['asc', 'desc']),
    )
    .addOption(new Option('--type <type>', 'only this event type').choices(eventTypes))
    .option('--mandate-id <id>', 'only events of this mandate', intOption('--mandate-id', ID))
    .option('--limit <n>', 'page size (max 1000)', intOption('--limit', PAGE_SIZE), 100)
    .option(
      '--follow',
      'from --after (default 0), oldest first, then keep polling (every second) until interrupted',
    )
    .option('--json', 'JSON output (one event per line with --follow)');
  renamedOption(list, '--mandate', '--mandate-id').action(async (o) => {
    await deps.withApp(async (app) => {
      if (!o.follow) {
        const page = await listEvents(app.database, {
          after: o.after,
          before: o.before,
          order: o.order,
          type: o.type,
          mandateId: o.mandateId,
          limit: o.limit,
        });
        if (o.json) return printJson(page);
        process.stdout.write(
          table(['id', 'at', 'type', 'mandate', 'customer', 'state'], page.items.map(eventRow)),
        );
        const asc = (o.order ?? (o.after !== undefined ? 'asc' : 'desc')) === 'asc';
        if (page.next !== null) process.stdout.write(`more: ${asc ? '--after' : '--before'} ${page.next}\n`);
        if (page.previous !== null)
          process.stdout.write(
            `previous page: ${asc ? `--before ${page.previous}` : `--after ${page.previous} --order desc`}\n`,
          );
        return;
      }
      let after: number = o.after ?? 0;
      let stop = false;
      const onSignal = () => {
        stop = true;
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        let first = true;
        do {
          const page = await listEvents(app.database, {
            after,
            order: 'asc',
            type: o.type,
            mandateId: o.mandateId,
            limit: o.limit,
          });
          if (page.items.length > 0) after = Number(page.items[page.items.length - 1]!.id);
          if (o.json) for (const e of page.items) process.stdout.write(`${JSON.stringify(e)}\n`);
          else if (page.items.length > 0 || first)
            process.stdout.write(
              table(['id', 'at', 'type', 'mandate', 'customer', 'state'], page.items.map(eventRow)),
            );
          first = false;
          if (page.next === null) await new Promise((r) => setTimeout(r, 1000));
        } while (!stop);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
  });

  events
    .command('show <id>')
    .description('One event with its payload (GET /v1/events/{id})')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const e = await getEvent(app.database, idArg('id', id));
        if (o.json) return printJson(e);
        process.stdout.write(table(['id', 'at', 'type', 'mandate', 'customer', 'state'], [eventRow(e)]));
        process.stdout.write(`${JSON.stringify(e.data, null, 2)}\n`);
      });
    });

  const hooks = program
    .command('webhooks')
    .description('Endpoints that receive events, and their deliveries');
  hooks
    .command('add <url>')
    .description('Add an endpoint; prints its signing secret, which is shown this once')
    .option('--events <types>', 'comma-separated event types, or * for all', '*')
    .option('--description <text>', 'a note for operators')
    .option('--json', 'JSON output')
    .action(async (url, o) => {
      await deps.withApp(async (app) => {
        const ep = await createEndpoint(app, {
          url,
          events: eventList(o.events),
          ...(o.description !== undefined ? { description: o.description } : {}),
        }).catch(flagged);
        if (o.json) return printJson(ep);
        process.stdout.write(
          `webhook endpoint ${ep.id} added for ${ep.events.join(', ')}\nsigning secret (shown once): ${ep.secret}\n`,
        );
      });
    });
  hooks
    .command('update <id>')
    .description('Change the event types an endpoint receives (from the next event on), or its description')
    .option('--events <types>', 'comma-separated event types, or * for all')
    .option('--description <text>', 'a note for operators')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      if (o.events === undefined && o.description === undefined)
        throw new InvalidRequestError('--events: give --events or --description to change');
      await deps.withApp(async (app) => {
        const ep = await updateEndpoint(app, idArg('id', id), {
          ...(o.events !== undefined ? { events: eventList(o.events) } : {}),
          ...(o.description !== undefined ? { description: o.description } : {}),
        }).catch(flagged);
        if (o.json) return printJson(ep);
        process.stdout.write(`webhook endpoint ${ep.id} now receives ${ep.events.join(', ')}\n`);
      });
    });
  hooks
    .command('list')
    .description('Endpoints')
    .option('--json', 'JSON output')
    .action(async (o) => {
      await deps.withApp(async (app) => {
        const page = await listEndpoints(app);
        if (o.json) return printJson(page);
        process.stdout.write(
          table(
            ['endpoint', 'url', 'events', 'status', 'failing since'],
            page.items.map((e) => [e.id, e.url, e.events.join(','), e.status, e.failingSince]),
          ),
        );
      });
    });
  hooks
    .command('show <id>')
    .description('One endpoint (never its secret)')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const e = await getEndpoint(app, idArg('id', id));
        if (o.json) return printJson(e);
        process.stdout.write(
          table(
            ['field', 'value'],
            [
              ['endpoint', e.id],
              ['url', e.url],
              ['events', e.events.join(', ')],
              ['description', e.description],
              ['status', e.status],
              ['status reason', e.statusReason],
              ['failing since', e.failingSince],
              ['old secret signs until', e.previousSecretExpiresAt],
              ['created', e.createdAt],
            ],
          ),
        );
      });
    });
  hooks
    .command('remove <id>')
    .description('Remove an endpoint; deliveries waiting for it end as failed')
    .action(async (id) => {
      await deps.withApp(async (app) => {
        const e = await removeEndpoint(app, idArg('id', id));
        process.stdout.write(`webhook endpoint ${e.id} removed\n`);
      });
    });
  hooks
    .command('rotate-secret <id>')
    .description('A new signing secret (printed once); the old one signs beside it for 24 hours')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const e = await rotateSecret(app, idArg('id', id));
        if (o.json) return printJson(e);
        process.stdout.write(
          `new signing secret (shown once): ${e.secret}\nthe old one keeps signing until ${e.previousSecretExpiresAt}\n`,
        );
      });
    });
  hooks
    .command('test <id>')
    .description('Queue a ping event for this endpoint (the daemon, or `webhooks deliver`, sends it)')
    .action(async (id) => {
      await deps.withApp(async (app) => {
        const r = await testEndpoint(app, idArg('id', id));
        process.stdout.write(`ping event ${r.eventId} queued for endpoint ${id}\n`);
      });
    });
  hooks
    .command('deliveries <id>')
    .description("An endpoint's deliveries, newest first")
    .addOption(new Option('--state <state>', 'only this state').choices([...DELIVERY_STATES]))
    .option('--limit <n>', 'page size (max 1000)', intOption('--limit', PAGE_SIZE), 50)
    .option('--before <id>', 'next page: deliveries before this id', intOption('--before', ID))
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const page = await listDeliveries(app, idArg('id', id), {
          state: o.state,
          limit: o.limit,
          before: o.before,
        });
        if (o.json) return printJson(page);
        process.stdout.write(
          table(
            [
              'delivery',
              'event',
              'type',
              'mandate',
              'state',
              'attempts',
              'last status',
              'error',
              'next attempt',
            ],
            page.items.map((d) => [
              d.id,
              d.eventId,
              d.eventType,
              d.mandateId,
              d.state,
              d.attempts,
              d.lastStatus,
              d.lastError,
              d.nextAttemptAt,
            ]),
          ),
        );
        if (page.next !== null) process.stdout.write(`more: --before ${page.next}\n`);
      });
    });
  hooks
    .command('resend <deliveryId>')
    .description('Deliver that event to that endpoint again, now')
    .action(async (id) => {
      await deps.withApp(async (app) => {
        const d = await resendDelivery(app, idArg('deliveryId', id));
        process.stdout.write(`delivery ${d.id} (event ${d.eventId}) queued again\n`);
      });
    });
  hooks
    .command('deliver')
    .description(
      'Deliver everything due now, once, and exit (for cron users; the daemon does this continuously)',
    )
    .option('--json', 'JSON output')
    .action(async (o) => {
      await deps.withApp(async (app) => {
        const deliverer = createDeliverer(app);
        try {
          const s = await deliverer.drain();
          // Cron users have no daemon to prune: each drain prunes what the retention lets go.
          const pruned = await pruneEvents(app.database, app.config.events.retentionDays);
          if (o.json) return printJson({ ...s, pruned });
          process.stdout.write(
            `delivered ${s.delivered}, to retry ${s.retried}, failed for good ${s.failed}${pruned > 0 ? `; pruned ${pruned} old events` : ''}\n`,
          );
        } finally {
          await deliverer.close();
        }
      });
    });
}

/** `--events a,b` as the list the API takes (`*` for all). */
const eventList = (v: string): string[] =>
  String(v)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/** CLI errors name the flag: `events` is --events here, `description` --description. */
function flagged(err: unknown): never {
  const e = err as { field?: string; message?: string };
  if (typeof e?.field === 'string' && e.message) {
    if (e.field.startsWith('events')) e.message = e.message.replace(/^events(\.\d+)?/, '--events');
    else if (e.field === 'description') e.message = e.message.replace(/^description/, '--description');
  }
  throw err;
}
