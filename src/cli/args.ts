// A small, strict argument parser shared by every `kiln` command.
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | boolean>;
}

/**
 * Parse `--name value`, `--name=value` and boolean `--flag` (names listed in `booleans`). A boolean
 * given a value (`--json=false`) and a value flag given twice are usage errors, not silently read.
 */
export function parseArgs(argv: string[], booleans: readonly string[] = ['json', 'help']): ParsedArgs {
  const positional: string[] = [];
  const flags: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h') { flags.help = true; continue; }
    if (!a.startsWith('--')) { positional.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (booleans.includes(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value, got '${a}'`);
      flags[name] = true;
      continue;
    }
    if (Object.hasOwn(flags, name)) throw new UsageError(`--${name} is given more than once`);
    if (eq >= 0) flags[name] = a.slice(eq + 1);
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
  if (typeof v !== 'string' || v.trim() === '') throw new UsageError(`--${name} needs a value`);
  return v;
}

export function flagNumber(f: ParsedArgs['flags'], name: string, dflt?: number): number | undefined {
  const s = flagString(f, name);
  if (s === undefined) return dflt;
  // Decimal and exponent forms only: Number() would also read 0x3, 0b11 and 0o7.
  const n = /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${s}'`);
  return n;
}

/** An integer flag in [min, max]: counts, sizes and seeds (a fraction, NaN or out-of-range value is a usage error). */
export function flagInt(f: ParsedArgs['flags'], name: string, dflt?: number, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = flagNumber(f, name);
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < min || v > max)
    throw new UsageError(`--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`}, got ${v}`);
  return v;
}

/** A number flag in the open interval (0, max): learning rates, temperatures. */
export function flagPositive(f: ParsedArgs['flags'], name: string, dflt: number, max = Infinity): number {
  const v = flagNumber(f, name, dflt)!;
  if (!(v > 0 && v < max)) throw new UsageError(`--${name} must be a number in (0, ${max}), got ${v}`);
  return v;
}

/**
 * A comma-separated flag: its items, trimmed, empty ones dropped (undefined when absent). With
 * `choices`, every item must be one of them and at least one is needed; repeats are dropped.
 */
export function flagList(f: ParsedArgs['flags'], name: string, choices?: readonly string[]): string[] | undefined {
  const v = flagString(f, name);
  if (v === undefined) return undefined;
  const list = v.split(',').map((s) => s.trim()).filter((s) => s);
  if (!choices) return list;
  if (!list.length) throw new UsageError(`--${name} needs at least one of ${choices.join(', ')}`);
  for (const x of list) if (!choices.includes(x)) throw new UsageError(`--${name}: unknown value '${x}' (expected ${choices.join(', ')})`);
  return [...new Set(list)];
}

/** Seeds are mixed as 32-bit unsigned integers, so a larger one would repeat a smaller one's stream. */
export { MAX_SEED } from '../recipes/seed.js';

/** Refuses an option a command does not take (a typo must not be silently ignored). */
export function checkFlags(f: ParsedArgs['flags'], known: readonly string[], where: string): void {
  for (const k of Object.keys(f)) if (k !== 'help' && !known.includes(k)) throw new UsageError(`${where}: unknown option --${k}`);
}

/**
 * The front of a one-verb command (`kiln <command> <verb> [options]`): parses argv; --help or no
 * verb prints `help` and gives the exit code to return (0 / 2); another verb, an extra argument or
 * an unknown option is a UsageError. Otherwise the parsed options.
 */
export function parseVerb(
  argv: string[], o: { command: string; verb: string; help: string; options: readonly string[]; booleans?: readonly string[] },
): ParsedArgs['flags'] | number {
  const { positional, flags } = parseArgs(argv, ['json', 'help', ...(o.booleans ?? [])]);
  if (flags.help || positional.length === 0) {
    console.log(o.help);
    return flags.help ? 0 : 2;
  }
  const [verb, ...extra] = positional;
  if (verb !== o.verb) throw new UsageError(`${o.command}: unknown verb '${verb}' (expected '${o.verb}')`);
  if (extra.length) throw new UsageError(`${o.command} ${o.verb}: unexpected argument '${extra[0]}'`);
  checkFlags(flags, o.options, `${o.command} ${o.verb}`);
  return flags;
}

/** A `kiln <command>` implementation: returns the process exit code. */
export interface Command {
  name: string;
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** A failed filesystem call (Node's errors carry `code`, `syscall` and usually `path`). */
export function isFsError(err: unknown): err is NodeJS.ErrnoException & { path: string } {
  const e = err as NodeJS.ErrnoException;
  return e instanceof Error && typeof e.code === 'string' && typeof e.syscall === 'string' && typeof e.path === 'string';
}

const FS_REASONS: Record<string, string> = {
  EEXIST: 'a file is in the way (not a folder)',
  ENOTDIR: 'a part of the path is a file, not a folder',
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a folder',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
};

/** One line for a failed filesystem call: "cannot write PATH: reason" (reads: "cannot read"). */
export function fsErrorLine(err: NodeJS.ErrnoException & { path: string }): string {
  const reading = ['scandir', 'read', 'stat', 'lstat', 'readlink'].includes(err.syscall ?? '');
  const reason = FS_REASONS[err.code!] ?? err.message.replace(/^\w+: /, '').replace(/, \w+ '.*'$/, '');
  return `cannot ${reading ? 'read' : 'write'} ${err.path}: ${reason}`;
}

/** Creates an output folder (and its parents) before a run starts, so a bad --out fails at once. */
export function prepareOutDir(dir: string): string {
  mkdirSync(dir, { recursive: true });
  accessSync(dir, constants.W_OK);
  return dir;
}

/** Creates an output file's folder and checks the file can be written there, before a run starts. */
export function prepareOutFile(path: string): string {
  prepareOutDir(dirname(path) || '.');
  if (existsSync(path) && statSync(path).isDirectory())
    throw Object.assign(new Error(`EISDIR: illegal operation on a directory, open '${path}'`), { code: 'EISDIR', syscall: 'open', path });
  return path;
}
