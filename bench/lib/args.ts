/** A tiny `--name value` / `--flag` parser: the bench and soak take a handful of numeric options. */
export interface Args {
  num(name: string, def: number): number;
  flag(name: string): boolean;
  str(name: string): string | undefined;
}

export class ArgsError extends Error {
  override name = 'ArgsError';
}

export function parseArgs(
  argv: string[],
  known: { numbers: string[]; flags: string[]; strings?: string[] },
): Args {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new ArgsError(`unexpected argument ${a}`);
    const [name, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
    if (known.flags.includes(name)) {
      flags.add(name);
      continue;
    }
    if (!known.numbers.includes(name) && !(known.strings ?? []).includes(name)) {
      throw new ArgsError(`unknown option --${name}`);
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ArgsError(`--${name} needs a value`);
    values.set(name, value);
  }
  return {
    num(name, def) {
      const raw = values.get(name);
      if (raw === undefined) return def;
      const n = Number(raw.replace(/_/g, ''));
      if (!Number.isFinite(n) || n < 0) throw new ArgsError(`--${name}: must be a non-negative number`);
      return n;
    },
    flag: (name) => flags.has(name),
    str: (name) => values.get(name),
  };
}
