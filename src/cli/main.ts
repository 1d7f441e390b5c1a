#!/usr/bin/env node
// `kiln <command> ...`: every command is loaded lazily so `kiln --help` stays fast.
import { UsageError, type Command } from './args.js';

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
  bigbench: {
    summary: 'run BIG-bench JSON tasks against models; emergence statistics (arXiv 2206.04615)',
    load: async () => (await import('../recipes/bigbench/cli.js')).command,
  },
};

function usage(): string {
  const lines = ['usage: kiln <command> [options]   (kiln <command> --help for details)', '', 'commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(22)} ${c.summary}`);
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const entry = commands[name];
  if (!entry) {
    console.error(`kiln: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  const cmd = await entry.load();
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    if (err instanceof UsageError) console.error(`kiln: ${err.message}`);
    else console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exitCode = err instanceof UsageError ? 2 : 1;
  },
);
