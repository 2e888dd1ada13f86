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
