// `kiln <command> ...`: the command table and the top-level error handling, apart from main.ts so
// tests can run the CLI in-process. Every command is loaded lazily so `kiln --help` stays fast.
import { KilnError } from '../errors.js';
import { fsErrorLine, isFsError, UsageError, type Command } from './args.js';

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  bench: { summary: 'benchmark kernels against PyTorch (gemm, overhead, ...)', load: async () => (await import('./bench.js')).command },
  demo: { summary: 'train a small MLP on a synthetic task and print its loss', load: async () => (await import('./demo.js')).command },
  decentralized: {
    summary: 'plan data/pipeline-parallel layouts over heterogeneous networks (arXiv 2206.01288)',
    load: async () => (await import('../recipes/decentralized/cli.js')).command,
  },
  icl: {
    summary: 'transformers learn function classes in context (arXiv 2208.01066): train|eval|plot|default',
    load: async () => (await import('../recipes/icl/cli.js')).command,
  },
  'calibrated-ensembles': {
    summary: 'ID-calibrated ensembles under distribution shift (arXiv 2207.08977)',
    load: async () => (await import('../recipes/calibrated-ensembles/cli.js')).command,
  },
  'diffusion-lm': {
    summary: 'continuous diffusion LM over word embeddings with classifier-guided control (arXiv 2205.14217)',
    load: async () => (await import('../recipes/diffusion-lm/cli.js')).command,
  },
  ssl: {
    summary: 'idealized SSL: CISSL and DISSL against SimCLR by linear probes (arXiv 2209.06235)',
    load: async () => (await import('../recipes/ssl/cli.js')).command,
  },
  clip: {
    summary: 'caption vs image-only supervision: CLIP against SimCLR by caption regime (arXiv 2207.07635)',
    load: async () => (await import('../recipes/clip/cli.js')).command,
  },
  emergence: {
    summary: 'emergent abilities: a scaling sweep of kiln GPTs on few-shot BIG-bench tasks (arXiv 2206.07682)',
    load: async () => (await import('../recipes/emergence/cli.js')).command,
  },
  'synthetic-pretraining': {
    summary: 'pre-training via simpler synthetic tasks: Set, LIME, parameter statistics (arXiv 2206.10139)',
    load: async () => (await import('../recipes/synthetic-pretraining/cli.js')).command,
  },
  simulacra: {
    summary: 'social simulacra: personas, threads and what-ifs from a community\'s goal and rules (arXiv 2208.04024)',
    load: async () => (await import('../recipes/simulacra/cli.js')).command,
  },
  bigbench: {
    summary: 'run BIG-bench JSON tasks against models; emergence statistics (arXiv 2206.04615)',
    load: async () => (await import('../recipes/bigbench/cli.js')).command,
  },
  serve: {
    summary: 'an OpenAI-compatible completions endpoint (/v1/completions) over a kiln language model',
    load: async () => (await import('../serve/cli.js')).command,
  },
};

export function usage(): string {
  const lines = ['usage: kiln <command> [options]   (kiln <command> --help for details)', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(22)} ${c.summary}`);
  return lines.join('\n');
}

export interface KilnIO {
  err: (s: string) => void;
}

const processIO: KilnIO = { err: (s) => console.error(s) };

/**
 * Runs `kiln <argv...>` and returns the exit status: a command's own, 2 for bad usage (one line and
 * a pointer to the command's --help), 1 for a refused input (a KilnError: its message, no stack), a
 * failed filesystem call (an unwritable --out: one line naming the path) or anything else (with its
 * stack: that is a bug).
 */
export async function runKiln(argv: string[], io: KilnIO = processIO): Promise<number> {
  if (argv[0] === 'help' && argv.length > 1) return runKiln([argv[1], '--help'], io); // kiln help <cmd> = kiln <cmd> --help
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const entry = commands[name];
  if (!entry) {
    io.err(`kiln: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  try {
    const cmd = await entry.load();
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`kiln: ${err.message}\n(kiln ${name} --help for usage)`);
      return 2;
    }
    if (err instanceof KilnError) io.err(`kiln: ${err.message}`);
    else if (isFsError(err)) io.err(`kiln ${name}: ${fsErrorLine(err)}`);
    else io.err(err instanceof Error ? (err.stack ?? err.message) : String(err));
    return 1;
  }
}
