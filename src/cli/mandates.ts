import { readFileSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { mandateActivity } from '../billing/mandates/activity.ts';
import { cancelChange, listChanges, updateMandate } from '../billing/mandates/changes.ts';
import {
  attachCredential,
  cancelMandate,
  createMandate,
  listMandates,
  type MandateView,
  pauseMandate,
  queueCharge,
  resumeMandate,
  showMandate,
  undoCancelAtPeriodEnd,
} from '../billing/mandates/index.ts';
import { GATEWAYS, INTENTS, SETTLE_MODES, WORLDPAY_APIS } from '../billing/mandates/schemas.ts';
import { cycleLabel } from '../domain/labels.ts';
import { mandateMachine } from '../domain/lifecycle.ts';
import { formatMoney } from '../domain/money.ts';
import { InvalidRequestError, ValidationError } from '../errors.ts';
import type { CliDeps } from './deps.ts';
import { humanTimes, ID, idArg, intOption, PAGE_SIZE, printJson, table } from './output.ts';
import { CREDENTIAL_FLAGS, flagOf, renamedCommand, renamedOption } from './vocabulary.ts';

/**
 * A card number or DPAN is read from a file (`--card-number-file F`) or standard input (`-`),
 * never from the command line, where it would land in `ps` and the shell's history.
 */
function secretFrom(option: string, source: string): string {
  let text: string;
  try {
    text = readFileSync(source === '-' ? 0 : source, 'utf8');
  } catch (err) {
    throw new InvalidRequestError(
      `${option}: cannot read ${source === '-' ? 'standard input' : source} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const value = text.trim();
  if (value === '')
    throw new InvalidRequestError(`${option}: ${source === '-' ? 'standard input' : source} is empty`);
  return value.replace(/[ -]/g, '');
}

function credentialFrom(opts: Record<string, string | undefined>): Record<string, unknown> {
  for (const [given, instead] of [
    ['cardNumber', '--card-number-file'],
    ['dpan', '--dpan-file'],
  ] as const) {
    if (opts[given] !== undefined)
      throw new InvalidRequestError(
        `--${given === 'cardNumber' ? 'card-number' : 'dpan'}: a card number on the command line lands in ps and the shell's history; give ${instead} FILE, or ${instead} - to read it from standard input`,
      );
  }
  if (opts.api === 'v7') return v7CredentialFrom(opts);
  for (const [given, flag] of [
    ['schemeReference', '--scheme-reference'],
    ['networkTokenFile', '--network-token-file'],
  ] as const) {
    if (opts[given] !== undefined) throw new InvalidRequestError(`${flag}: only with --api v7`);
  }
  const given = ['link', 'cardNumberFile', 'tokenHref', 'dpanFile', 'liquidoCardId'].filter(
    (k) => opts[k] !== undefined,
  );
  if (given.length !== 1) {
    throw new InvalidRequestError(
      'credential: give exactly one of --link, --card-number-file, --token-href, --dpan-file, --liquido-card-id',
    );
  }
  const expiry = () => expiryFrom(opts);
  if (opts.link) return { link: opts.link };
  if (opts.tokenHref) return { tokenHref: opts.tokenHref };
  if (opts.liquidoCardId) return { liquidoCardId: opts.liquidoCardId };
  const holder = opts.cardHolderName ? { cardHolderName: opts.cardHolderName } : {};
  if (opts.cardNumberFile)
    return { cardNumber: secretFrom('--card-number-file', opts.cardNumberFile), ...expiry(), ...holder };
  return { dpan: secretFrom('--dpan-file', opts.dpanFile ?? '-'), ...expiry(), ...holder };
}

function expiryFrom(opts: Record<string, string | undefined>): { expiryMonth: number; expiryYear: number } {
  const m = /^(\d{1,2})\/(\d{4})$/.exec(opts.expiry ?? '');
  if (!m) throw new InvalidRequestError('--expiry: expected MM/YYYY');
  return { expiryMonth: Number(m[1]), expiryYear: Number(m[2]) };
}

/**
 * `--api v7`: a token, a card or a network token, with the first payment's scheme reference
 * (required for a card or network token). The reference is passed on as given, trailing spaces
 * included; the numbers come from files, as for v6.
 */
function v7CredentialFrom(opts: Record<string, string | undefined>): Record<string, unknown> {
  for (const [key, flag] of [
    ['link', '--link'],
    ['dpanFile', '--dpan-file'],
    ['liquidoCardId', '--liquido-card-id'],
  ] as const) {
    if (opts[key] !== undefined)
      throw new InvalidRequestError(
        `${flag}: not a Card Payments v7 credential; with --api v7 give --token-href, --card-number-file or --network-token-file`,
      );
  }
  const given = ['tokenHref', 'cardNumberFile', 'networkTokenFile'].filter((k) => opts[k] !== undefined);
  if (given.length !== 1)
    throw new InvalidRequestError(
      'credential: with --api v7 give exactly one of --token-href, --card-number-file, --network-token-file',
    );
  const ref = opts.schemeReference !== undefined ? { schemeReference: opts.schemeReference } : {};
  if (opts.tokenHref !== undefined) {
    if (opts.cardHolderName !== undefined || opts.expiry !== undefined)
      throw new InvalidRequestError(
        `${opts.expiry !== undefined ? '--expiry' : '--card-holder-name'}: not with --token-href (the token holds the card)`,
      );
    return { api: 'v7', ...ref, tokenHref: opts.tokenHref };
  }
  const card = opts.cardNumberFile !== undefined;
  if (opts.schemeReference === undefined)
    throw new InvalidRequestError(
      `--scheme-reference: required with ${card ? '--card-number-file' : '--network-token-file'}: the scheme reference the customer's first, customer-initiated payment answered with`,
    );
  if (card)
    return {
      api: 'v7',
      ...ref,
      card: {
        number: secretFrom('--card-number-file', opts.cardNumberFile!),
        ...expiryFrom(opts),
        ...(opts.cardHolderName !== undefined ? { holderName: opts.cardHolderName } : {}),
      },
    };
  if (opts.cardHolderName !== undefined)
    throw new InvalidRequestError('--card-holder-name: not with --network-token-file');
  return {
    api: 'v7',
    ...ref,
    networkToken: { number: secretFrom('--network-token-file', opts.networkTokenFile!), ...expiryFrom(opts) },
  };
}

function credentialOptions(c: Command): Command {
  return (
    c
      .addOption(
        new Option(
          '--api <version>',
          "Worldpay's card API: v6 (recurring link chain, the default) or v7 (merchant-initiated, by scheme reference)",
        ).choices(WORLDPAY_APIS),
      )
      .option('--link <href>', 'v6: payments:recurringAuthorize href from a customer-initiated verification')
      .option(
        '--card-number-file <file|->',
        'card read from FILE or standard input (-), stored encrypted; v6: for migrateRecurring, kept until the first charge; v7: kept, sent on every charge',
      )
      .option('--token-href <href>', 'Worldpay token href (v6: for migrateRecurring)')
      .option(
        '--dpan-file <file|->',
        'v6: Apple Pay network token for migrateRecurring, from FILE or standard input (-)',
      )
      .option(
        '--network-token-file <file|->',
        'v7: network token number, from FILE or standard input (-), stored encrypted',
      )
      .option(
        '--scheme-reference <ref>',
        "v7: the scheme reference of the customer's first, customer-initiated payment, as given (trailing spaces kept); required with a card or network token",
      )
      .option('--expiry <MM/YYYY>', 'expiry of the card, DPAN or network token')
      // Refused with the reason (see credentialFrom): kept so a user who types them is told why.
      .addOption(new Option('--card-number <pan>').hideHelp())
      .addOption(new Option('--dpan <dpan>').hideHelp())
      .option('--card-holder-name <name>', 'card holder name')
      .option('--liquido-card-id <id>', 'vaulted Liquido card (Liquido mandates)')
  );
}

/**
 * What a mandate is charged with, in one line: the gateway and, for Worldpay, the card API, the
 * instrument, its status and the scheme reference quoted (its trailing spaces are part of it).
 */
function credentialLine(m: MandateView): string {
  const c = m.credential;
  return [
    m.gateway === 'worldpay' ? `Worldpay ${c.api}` : m.gateway,
    c.instrumentType,
    c.status,
    ...(c.schemeReference !== null ? [`scheme reference ${JSON.stringify(c.schemeReference)}`] : []),
  ].join(' · ');
}

function printMandates(items: MandateView[]): void {
  process.stdout.write(
    table(
      ['id', 'customer', 'intent', 'amount', 'interval', 'status', 'next due', 'card'],
      items.map((m) => [
        m.id,
        m.customerRef,
        m.intent,
        formatMoney(m.amount, m.currency),
        m.interval,
        m.status,
        m.nextDueAt,
        m.credential.lastFour
          ? `${m.credential.brand ?? ''} ..${m.credential.lastFour}`
          : m.credential.instrumentType,
      ]),
    ),
  );
}

export function registerMandateCommands(program: Command, deps: CliDeps): void {
  const mandates = program.command('mandates').description('Create, inspect and change mandates');
  registerChangeCommands(mandates, deps);

  const create = credentialOptions(
    mandates
      .command('create')
      .description('Register a mandate (its customer already went through a customer-initiated verification)')
      .option('--customer-ref <ref>', 'customer reference (required)')
      .addOption(
        new Option('--intent <intent>', 'what the mandate is for').choices(INTENTS).makeOptionMandatory(),
      )
      .option(
        '--amount <minor>',
        'amount in minor units (per instalment for instalment plans; or --total-amount)',
        intOption('--amount'),
      )
      .requiredOption('--currency <XXX>', 'ISO-4217 currency')
      .option('--entity <entity>', 'merchant entity (default WORLDPAY_ENTITY)')
      .requiredOption('--narrative <text>', 'statement narrative (<= 24 characters)')
      .option('--interval <interval>', 'e.g. "1 month", "2 weeks", "1 year"')
      .option('--start <iso>', 'first charge (default now); without an offset, local time in --timezone')
      .option('--backfill', 'with a --start in the past: charge every cycle since, not only the latest')
      .option('--timezone <iana>', 'calendar time zone', 'UTC')
      .option('--local-time <HH:mm>', 'charge time of day in the time zone')
      .option('--trial-end <iso>', 'first charge at the end of a trial')
      .option('--end <iso>', 'no charge after this instant')
      .option(
        '--instalments <n>',
        'number of instalments',
        intOption('--instalments', { min: 1, max: 1000, what: 'an integer from 1 to 1000' }),
      )
      .option(
        '--total-amount <minor>',
        'instalment plans: total to split, remainder on the last',
        intOption('--total-amount'),
      )
      .addOption(
        new Option('--gateway <name>', 'the gateway that charges it').choices(GATEWAYS).default('worldpay'),
      )
      .addOption(
        new Option('--settle-mode <mode>', 'how much of each authorization to settle')
          .choices(SETTLE_MODES)
          .default('full'),
      )
      .option(
        '--settle-percent <n>',
        'with --settle-mode partial',
        intOption('--settle-percent', { min: 1, max: 100, what: 'a percentage from 1 to 100' }),
      )
      .option('--json', 'print the created mandate as JSON'),
  );
  renamedOption(create, '--customer', '--customer-ref');
  renamedOption(create, '--total', '--total-amount');
  renamedOption(create, '--settle', '--settle-mode');
  renamedOption(create, '--card-holder', '--card-holder-name');
  create.action(async (o) => {
    await deps.withApp(async (app) => {
      const m = await asOptions(
        createMandate(app, {
          customerRef: o.customerRef,
          intent: o.intent,
          amount: o.amount,
          currency: o.currency,
          entity: o.entity,
          narrative: o.narrative,
          interval: o.interval,
          start: o.start,
          backfill: o.backfill ? true : undefined,
          timezone: o.timezone,
          localTime: o.localTime,
          trialEnd: o.trialEnd,
          end: o.end,
          instalments: o.instalments,
          totalAmount: o.totalAmount,
          gateway: o.gateway,
          settleMode: o.settleMode,
          settlePercent: o.settlePercent,
          credential: credentialFrom(o),
        }),
      );
      if (o.json) printJson(m);
      else
        process.stdout.write(
          humanTimes(
            `created mandate ${m.id} (${m.intent}, next due ${m.nextDueAt ?? 'when a charge is queued'})\n`,
          ),
        );
    });
  });

  const list = mandates
    .command('list')
    .description('List mandates')
    .addOption(
      new Option('--status <s>', 'a mandate status').choices(Object.keys(mandateMachine.transitions)),
    )
    .addOption(new Option('--intent <intent>', 'only this intent').choices(INTENTS))
    .addOption(new Option('--gateway <name>', 'only mandates charged through this gateway').choices(GATEWAYS))
    .option('--customer-ref <prefix>', 'customer refs starting with this (ada finds ada-1)')
    .option('--search <text>', 'a mandate id or a transaction reference exactly, or a customer ref by prefix')
    .option('--limit <n>', 'page size (max 1000)', intOption('--limit', PAGE_SIZE), 50)
    .option('--after <id>', 'next page: mandates after this id', intOption('--after', ID))
    .option('--json', 'JSON output');
  renamedOption(list, '--customer', '--customer-ref').action(async (o) => {
    await deps.withApp(async (app) => {
      const page = await listMandates(app.database, {
        status: o.status,
        intent: o.intent,
        customerRef: o.customerRef,
        q: o.search,
        gateway: o.gateway,
        limit: o.limit,
        after: o.after,
      });
      if (o.json) printJson(page);
      else {
        printMandates(page.items);
        if (page.next !== null) process.stdout.write(`more: --after ${page.next}\n`);
      }
    });
  });

  mandates
    .command('show <id>')
    .description('Show a mandate with its charges, attempts and link chain')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const m = await showMandate(app.database, idArg('id', id));
        if (o.json) return printJson(m);
        printMandates([m]);
        process.stdout.write(`\ncredential ${m.credential.id}: ${credentialLine(m)}\n`);
        // v7 credentials have no link chain: each charge is tied to the first payment by its reference.
        if (m.credential.api !== 'v7' || m.links.length > 0) {
          process.stdout.write(`\nlink chain (credential ${m.credential.id})\n`);
          process.stdout.write(
            table(
              ['link', 'rel', 'source', 'current', 'href'],
              m.links.map((l) => [l.id, l.rel, l.source, l.current ? 'yes' : '', l.href]),
            ),
          );
        }
        process.stdout.write('\ncharges\n');
        process.stdout.write(
          table(
            ['charge', 'cycle', 'amount', 'due', 'state', 'attempts', 'last decision'],
            m.charges.map((c) => [
              c.id,
              cycleLabel(c),
              formatMoney(c.amount, c.currency),
              c.dueAt,
              c.state,
              c.attempts.length,
              c.attempts.at(-1)?.decisionReason ?? c.stateReason,
            ]),
          ),
        );
      });
    });

  for (const [name, desc] of [
    ['pause', 'Pause billing'],
    ['resume', 'Resume billing (cycles missed while paused are skipped)'],
  ] as const) {
    mandates
      .command(`${name} <id>`)
      .description(desc)
      .option('--json', 'JSON output')
      .action(async (id, o) => {
        await deps.withApp(async (app) => {
          const m =
            name === 'pause'
              ? await pauseMandate(app, idArg('id', id))
              : await resumeMandate(app, idArg('id', id));
          if (o.json) printJson(m);
          else process.stdout.write(`mandate ${m.id} is ${m.status}\n`);
        });
      });
  }

  mandates
    .command('cancel <id>')
    .description('Cancel now, or at the end of the current period')
    .option('--at-period-end', 'let the current period run out')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const m = await cancelMandate(app, idArg('id', id), { atPeriodEnd: Boolean(o.atPeriodEnd) });
        if (o.json) printJson(m);
        else
          process.stdout.write(
            `mandate ${m.id} is ${m.status}${m.cancelAtPeriodEnd ? ' (cancels at period end)' : ''}\n`,
          );
      });
    });

  mandates
    .command('undo-cancel <id>')
    .description('Undo a cancel scheduled for the end of the period: the mandate renews as before')
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const m = await undoCancelAtPeriodEnd(app, idArg('id', id));
        if (o.json) printJson(m);
        else
          process.stdout.write(
            humanTimes(`mandate ${m.id} is ${m.status} and renews (next due ${m.nextDueAt ?? '-'})\n`),
          );
      });
    });

  mandates
    .command('activity <id>')
    .description(
      "A mandate's activity from the audit trail, newest first: its own moves and changes, its charges', their payment actions' and its credentials'",
    )
    .option('--limit <n>', 'page size (max 1000)', intOption('--limit', PAGE_SIZE), 100)
    .option('--before <id>', 'next page: entries before this id', intOption('--before', ID))
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const page = await mandateActivity(app.database, idArg('id', id), {
          limit: o.limit,
          before: o.before,
        });
        if (o.json) return printJson(page);
        process.stdout.write(
          table(
            ['at', 'entity', 'id', 'from → to', 'reason', 'actor'],
            page.items.map((a) => [
              a.at,
              a.entity,
              a.entityId,
              `${a.from ?? '-'} → ${a.to}`,
              a.reason,
              a.actor,
            ]),
          ),
        );
        if (page.next !== null) process.stdout.write(`more: --before ${page.next}\n`);
      });
    });

  // `credential` is POST /v1/mandates/{id}/credential; `charge` is POST /v1/mandates/{id}/charges.
  renamedCommand('attach-credential', 'credential', (name, options) => {
    const cmd = credentialOptions(
      mandates
        .command(`${name} <id>`, options)
        .description('Attach new card details: resumes billing and clears a stop')
        .option('--json', 'JSON output'),
    );
    renamedOption(cmd, '--card-holder', '--card-holder-name');
    return cmd.action(async (id, o) => {
      await deps.withApp(async (app) => {
        const m = await asOptions(attachCredential(app, idArg('id', id), credentialFrom(o)));
        if (o.json) printJson(m);
        else
          process.stdout.write(`mandate ${m.id} now uses credential ${m.credential.id} and is ${m.status}\n`);
      });
    });
  });

  renamedCommand('queue-charge', 'charge', (name, options) =>
    mandates
      .command(`${name} <id>`, options)
      .description('Charge an unscheduled mandate: a charge due now, sent by the next run')
      .option('--amount <minor>', 'amount (default the mandate amount)', intOption('--amount'))
      .option('--json', 'JSON output')
      .action(async (id, o) => {
        await deps.withApp(async (app) => {
          const c = await queueCharge(app, idArg('id', id), { amount: o.amount });
          if (o.json) printJson(c);
          else process.stdout.write(`charge ${c.chargeId} (cycle ${c.cycle}) is due now\n`);
        });
      }),
  );
}

function registerChangeCommands(mandates: Command, deps: CliDeps): void {
  const update = mandates
    .command('update <id>')
    .description(
      'Change a mandate: at the next cycle (default), now, or at an instant; proration charge or credit for changes effective now or at an instant',
    )
    .option('--amount <minor>', 'new amount per cycle, minor units', intOption('--amount'))
    .option('--interval <interval>', 'new interval, e.g. "1 month"')
    .option('--billing-anchor <iso>', 'the next charge instant; later cycles keep its day and local time')
    .option('--narrative <text>', 'statement narrative')
    .option('--end <iso|none>', 'no cycle after this instant (none: no end)')
    .addOption(
      new Option('--settle-mode <mode>', 'how much of each authorization to settle').choices(SETTLE_MODES),
    )
    .option(
      '--settle-percent <n>',
      'with --settle-mode partial',
      intOption('--settle-percent', { min: 1, max: 100, what: 'a percentage from 1 to 100' }),
    )
    .option('--effective <when>', 'next_cycle | now | an ISO instant (a scheduled change)', 'next_cycle')
    .addOption(
      new Option('--proration <p>', 'for a change effective now or at an instant').choices([
        'none',
        'charge',
        'credit',
      ]),
    )
    .option('--json', 'JSON output');
  renamedOption(update, '--settle', '--settle-mode').action(async (id, o) => {
    await deps.withApp(async (app) => {
      const body: Record<string, unknown> = { effective: o.effective };
      if (o.amount !== undefined) body.amount = o.amount;
      if (o.interval !== undefined) body.interval = o.interval;
      if (o.billingAnchor !== undefined) body.billingAnchor = o.billingAnchor;
      if (o.narrative !== undefined) body.narrative = o.narrative;
      if (o.end !== undefined) body.end = o.end === 'none' ? null : o.end;
      if (o.settleMode !== undefined) body.settleMode = o.settleMode;
      if (o.settlePercent !== undefined) body.settlePercent = o.settlePercent;
      if (o.proration !== undefined) body.proration = o.proration;
      const m = await asOptions(updateMandate(app, idArg('id', id), body));
      if (o.json) return printJson(m);
      const c = m.change;
      process.stdout.write(
        c.state === 'scheduled'
          ? `change ${c.id} of mandate ${m.id} scheduled for ${c.effectiveAt}\n`
          : `mandate ${m.id} changed (effective ${c.effectiveAt}): ${formatMoney(m.amount, m.currency)} ${m.interval ?? ''}, next ${m.nextDueAt ?? '-'}` +
              `${c.oneOffAmount > 0 ? `; prorated charge ${c.oneOffChargeId} of ${formatMoney(c.oneOffAmount, m.currency)}` : ''}` +
              `${c.credited > 0 ? `; credit ${formatMoney(c.credited, m.currency)} (balance ${formatMoney(m.creditBalance, m.currency)})` : ''}\n`,
      );
    });
  });
  mandates
    .command('changes <id>')
    .description("A mandate's scheduled, applied and cancelled changes")
    .option('--json', 'JSON output')
    .action(async (id, o) => {
      await deps.withApp(async (app) => {
        const page = await listChanges(app, idArg('id', id));
        if (o.json) return printJson(page);
        process.stdout.write(
          table(
            ['change', 'effective', 'state', 'proration', 'changes'],
            page.items.map((c) => [c.id, c.effectiveAt, c.state, c.proration, JSON.stringify(c.changes)]),
          ),
        );
      });
    });
  mandates
    .command('cancel-change <id> <changeId>')
    .description('Cancel a scheduled change')
    .action(async (id, changeId) => {
      await deps.withApp(async (app) => {
        const c = await cancelChange(app, idArg('id', id), idArg('changeId', changeId));
        process.stdout.write(`change ${c.id} of mandate ${c.mandateId} is ${c.state}\n`);
      });
    });
}

/**
 * The service names body fields; on the command line they are options by the glossary's rule
 * (`trialEnd` is `--trial-end`, `credential.tokenHref` is `--token-href`), but for the card data
 * read from a file and the expiry given as one flag (CREDENTIAL_FLAGS).
 */
async function asOptions<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof ValidationError) {
      const field = err.field.replace(/^credential\./, '');
      const option = CREDENTIAL_FLAGS[field] ?? flagOf(field);
      throw new ValidationError(option, err.message.slice(err.field.length + 2));
    }
    throw err;
  }
}
