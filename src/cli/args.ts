// A small, strict argument parser shared by every `kiln` command.
export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | boolean>;
}

/** Parse `--name value`, `--name=value` and boolean `--flag` (names listed in `booleans`). */
export function parseArgs(argv: string[], booleans: readonly string[] = ['json', 'help']): ParsedArgs {
  const positional: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h') { flags.help = true; continue; }
    if (!a.startsWith('--')) { positional.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (eq >= 0) flags[name] = a.slice(eq + 1);
    else if (booleans.includes(name)) flags[name] = true;
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) flags[name] = argv[++i];
    else flags[name] = true;
  }
  return { positional, flags };
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function flagString(f: ParsedArgs['flags'], name: string, dflt?: string): string | undefined {
  const v = f[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'string') throw new UsageError(`--${name} needs a value`);
  return v;
}

export function flagNumber(f: ParsedArgs['flags'], name: string, dflt?: number): number | undefined {
  const s = flagString(f, name);
  if (s === undefined) return dflt;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${s}'`);
  return n;
}

/** A `kiln <command>` implementation: returns the process exit code. */
export interface Command {
  name: string;
  summary: string;
  run(argv: string[]): Promise<number>;
}
