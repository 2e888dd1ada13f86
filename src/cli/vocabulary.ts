import { type Command, type CommandOptions, Option } from 'commander';
import { InvalidRequestError } from '../errors.ts';

/**
 * One word per concept across the CLI and the API (the README's glossary): an API field in
 * camelCase is the CLI flag in kebab-case (`customerRef` is `--customer-ref`), and a CLI
 * subcommand is the API path's word (`charges reversal` is `POST /v1/charges/{id}/reversal`).
 * The spellings this replaced still work for one release, hidden from the help, each printing a
 * deprecation notice on standard error.
 */

/** The notice an old spelling prints on standard error (standard output stays the command's). */
export function deprecationNotice(old: string, now: string): void {
  process.stderr.write(`rebill: ${old} is deprecated and goes in the next release; use ${now}\n`);
}

/** `customerRef` as a flag: `--customer-ref`. */
export const flagOf = (field: string): string => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Old flag spellings, per command: the vocabulary test reads them. */
export const RENAMED_OPTIONS = new WeakMap<Command, { old: string; now: string }[]>();

/**
 * Keep an option's old spelling as a hidden alias of `now` (declared on `cmd` already): parsed
 * and checked the same way, it sets the new option's value and prints the notice.
 */
export function renamedOption(cmd: Command, old: string, now: string): Command {
  const target = cmd.options.find((o) => o.long === now);
  if (!target) throw new Error(`${cmd.name()}: no option ${now} to alias`);
  const alias = new Option(target.flags.replace(now, old), `deprecated: ${now}`).hideHelp();
  if (target.parseArg) alias.argParser(target.parseArg);
  if (target.argChoices) alias.argChoices = target.argChoices;
  cmd.addOption(alias);
  const list = RENAMED_OPTIONS.get(cmd) ?? [];
  list.push({ old, now });
  RENAMED_OPTIONS.set(cmd, list);
  cmd.hook('preAction', (_self, action) => {
    const oldKey = alias.attributeName();
    const newKey = target.attributeName();
    const value = action.getOptionValue(oldKey);
    if (value === undefined) return;
    if (action.getOptionValueSource(newKey) === 'cli')
      throw new InvalidRequestError(`${now}: give ${now} or ${old}, not both`);
    deprecationNotice(old, now);
    action.setOptionValueWithSource(newKey, value, 'cli');
  });
  return cmd;
}

/**
 * Keep a subcommand's old name as a hidden command that runs the new one with a notice:
 * `register(name, options)` declares the command (`parent.command(name, options)` and the rest),
 * once as `now` and once, hidden, as `old`.
 */
export function renamedCommand(
  old: string,
  now: string,
  register: (name: string, options: CommandOptions) => Command,
): void {
  register(now, {});
  const alias = register(old, { hidden: true });
  alias.hook('preAction', () => deprecationNotice(commandPath(alias), commandPath(alias, now)));
}

/** `rebill payments settle` as typed (the root's name left out), or with its last word replaced. */
export function commandPath(cmd: Command, last?: string): string {
  const words: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) words.unshift(c.name());
  if (last !== undefined) words[words.length - 1] = last;
  return `rebill ${words.join(' ')}`;
}

/**
 * How an API field is given on the CLI where the rule alone does not say: `argument` (a
 * positional `<name>`), another flag, `deprecated` (an old spelling the API still takes), or
 * `refused` (named by the API only to refuse it with a reason).
 */
export type FieldSpelling = `--${string}` | 'argument' | 'deprecated' | 'refused';

/**
 * The card data a credential carries, as the CLI takes it (never a number on the command line):
 * a v6 field by its name, a v7 card's or network token's by its path (`card.number`).
 */
export const CREDENTIAL_FLAGS: Record<string, FieldSpelling> = {
  cardNumber: '--card-number-file',
  dpan: '--dpan-file',
  expiryMonth: '--expiry',
  expiryYear: '--expiry',
  'card.number': '--card-number-file',
  'card.expiryMonth': '--expiry',
  'card.expiryYear': '--expiry',
  'card.holderName': '--card-holder-name',
  'networkToken.number': '--network-token-file',
  'networkToken.expiryMonth': '--expiry',
  'networkToken.expiryYear': '--expiry',
};

/**
 * The glossary: every admin API route and the CLI command that does the same, with the fields
 * the rule does not spell. The README's table is this one; the vocabulary test checks every
 * route is here and every field of it has its flag.
 */
export const GLOSSARY: { api: string; cli: string; fields?: Record<string, FieldSpelling> }[] = [
  { api: 'POST /v1/runs', cli: 'run' },
  { api: 'GET /v1/runs', cli: 'runs list' },
  { api: 'GET /v1/runs/:id', cli: 'runs show' },
  { api: 'POST /v1/reconciliations', cli: 'reconcile' },
  { api: 'GET /v1/forecast', cli: 'forecast' },
  { api: 'POST /v1/mandates', cli: 'mandates create' },
  { api: 'GET /v1/mandates', cli: 'mandates list', fields: { q: '--search', customer: 'deprecated' } },
  { api: 'GET /v1/mandates/:id', cli: 'mandates show' },
  // A mandate keeps its currency: PATCH names the field only to say so.
  { api: 'PATCH /v1/mandates/:id', cli: 'mandates update', fields: { currency: 'refused' } },
  { api: 'POST /v1/mandates/:id/pause', cli: 'mandates pause' },
  { api: 'POST /v1/mandates/:id/resume', cli: 'mandates resume' },
  { api: 'POST /v1/mandates/:id/cancel', cli: 'mandates cancel' },
  { api: 'POST /v1/mandates/:id/credential', cli: 'mandates credential' },
  { api: 'POST /v1/mandates/:id/charges', cli: 'mandates charge' },
  { api: 'GET /v1/mandates/:id/changes', cli: 'mandates changes' },
  { api: 'DELETE /v1/mandates/:id/changes/:changeId', cli: 'mandates cancel-change' },
  { api: 'POST /v1/mandates/:id/undo-cancel', cli: 'mandates undo-cancel' },
  { api: 'GET /v1/mandates/:id/activity', cli: 'mandates activity' },
  { api: 'GET /v1/charges', cli: 'charges list', fields: { q: '--search' } },
  { api: 'GET /v1/charges/:id', cli: 'charges show' },
  { api: 'POST /v1/charges/:id/retry-now', cli: 'charges retry-now' },
  { api: 'POST /v1/charges/:id/settle', cli: 'charges settle' },
  { api: 'POST /v1/charges/:id/partial-settle', cli: 'charges partial-settle' },
  { api: 'POST /v1/charges/:id/cancel', cli: 'charges cancel' },
  { api: 'POST /v1/charges/:id/refund', cli: 'charges refund' },
  { api: 'POST /v1/charges/:id/partial-refund', cli: 'charges partial-refund' },
  { api: 'POST /v1/charges/:id/reversal', cli: 'charges reversal' },
  { api: 'POST /v1/charges/:id/query', cli: 'charges query' },
  { api: 'GET /v1/charges/:id/events', cli: 'charges events' },
  { api: 'GET /v1/disputes', cli: 'disputes list' },
  { api: 'POST /v1/paypal-payments', cli: 'paypal track' },
  { api: 'GET /v1/paypal-payments', cli: 'paypal list' },
  { api: 'GET /v1/paypal-payments/:id', cli: 'paypal show' },
  { api: 'POST /v1/paypal-payments/:id/refund', cli: 'paypal refund' },
  { api: 'POST /v1/paypal-payments/:id/partial-refund', cli: 'paypal partial-refund' },
  { api: 'GET /v1/events', cli: 'events list' },
  { api: 'GET /v1/events/:id', cli: 'events show' },
  { api: 'POST /v1/webhook-endpoints', cli: 'webhooks add', fields: { url: 'argument' } },
  { api: 'GET /v1/webhook-endpoints', cli: 'webhooks list' },
  { api: 'GET /v1/webhook-endpoints/:id', cli: 'webhooks show' },
  { api: 'PATCH /v1/webhook-endpoints/:id', cli: 'webhooks update' },
  { api: 'DELETE /v1/webhook-endpoints/:id', cli: 'webhooks remove' },
  { api: 'POST /v1/webhook-endpoints/:id/rotate-secret', cli: 'webhooks rotate-secret' },
  { api: 'POST /v1/webhook-endpoints/:id/test', cli: 'webhooks test' },
  { api: 'GET /v1/webhook-endpoints/:id/deliveries', cli: 'webhooks deliveries' },
  { api: 'POST /v1/webhook-deliveries/:id/resend', cli: 'webhooks resend' },
  { api: 'GET /v1/reports/summary', cli: 'reports summary' },
  { api: 'GET /v1/reports/recovery', cli: 'reports recovery' },
  { api: 'GET /v1/reports/daily', cli: 'reports daily' },
  { api: 'GET /v1/exports/:kind', cli: 'exports' },
];
