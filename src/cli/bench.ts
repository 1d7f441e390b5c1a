// `kiln bench <name> [--device cpu|cuda] [--threads N] [--only a,b] [--json [FILE]]`
import { cpus } from 'node:os';
import * as kiln from '../index.js';
import { checkFlags, flagInt, flagString, parseArgs, prepareOutFile, UsageError, type Command } from './args.js';

export const command: Command = {
  name: 'bench',
  summary: 'benchmark kiln kernels against PyTorch in the same run',
  async run(argv) {
    // --json alone prints the report as JSON; --json FILE prints the table and writes the JSON there.
    const { positional, flags } = parseArgs(argv, ['help']);
    const { benchmarks, formatReport, saveReport } = await import('../../bench/index.js');
    if (typeof flags.json === 'string' && positional.length === 0 && benchmarks[flags.json]) {
      positional.push(flags.json);
      flags.json = true;
    }
    if (flags.help || positional.length === 0) {
      console.log('usage: kiln bench <name> [--device cpu|cuda] [--threads N (default KILN_NUM_THREADS, else 2)] [--only case,...] [--json [FILE]]\n' +
        '  (--only: case names as printed; attention also takes BxHxTxD, e.g. 2x8x8192x128)\n\nbenchmarks:');
      for (const [n, b] of Object.entries(benchmarks)) console.log(`  ${n.padEnd(12)} ${b.summary}`);
      return positional.length === 0 && !flags.help ? 2 : 0;
    }
    const name = positional[0];
    const b = benchmarks[name];
    if (!b) throw new UsageError(`unknown benchmark '${name}' (have: ${Object.keys(benchmarks).join(', ')})`);
    if (positional.length > 1) throw new UsageError(`kiln bench ${name}: unexpected argument '${positional[1]}'`);
    checkFlags(flags, ['device', 'threads', 'only', 'json'], `kiln bench ${name}`);
    const device = flagString(flags, 'device', 'cpu');
    if (device !== 'cpu' && device !== 'cuda') throw new UsageError(`kiln bench ${name}: --device must be cpu or cuda (got '${device}')`);
    if (device === 'cuda' && !b.cuda) throw new UsageError(`kiln bench ${name}: no --device cuda variant (have: ${Object.keys(benchmarks).filter((n) => benchmarks[n].cuda).join(', ') || 'none'})`);
    if (device === 'cuda' && !kiln.cuda.isAvailable())
      throw new UsageError(`kiln bench ${name} --device cuda: CUDA is not available (${kiln.cuda.isCompiled() ? 'no usable GPU' : 'kiln was built without CUDA'})`);
    if (typeof flags.json === 'string') prepareOutFile(flags.json); // an unwritable report path fails before the run
    const envThreads = Number(process.env.KILN_NUM_THREADS);
    const threads = flagInt(flags, 'threads', Number.isInteger(envThreads) && envThreads >= 1 && envThreads <= 1024 ? envThreads : 2, 1, 1024)!;
    kiln.setNumThreads(threads);
    const only = flagString(flags, 'only')?.split(',');
    if (only && b.only === false) throw new UsageError(`kiln bench ${name}: takes no --only (it runs every case; have --only: ${Object.keys(benchmarks).filter((n) => benchmarks[n].only !== false).join(', ')})`);
    const res = b.run(threads, only, device);
    if (only && res.rows.length === 0) throw new UsageError(`kiln bench ${name}: --only ${only.join(',')} names no case of this benchmark`);
    const report = {
      bench: name, device, threads, machine: `${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}${device === 'cuda' ? `, GPU ${kiln.cuda.deviceName(0)}` : ''}`,
      torch: res.torch, torchError: res.torchError, rows: res.rows, notes: res.notes, date: new Date().toISOString(),
    };
    if (typeof flags.json === 'string') {
      saveReport(flags.json, report);
      console.log(formatReport(report));
    } else console.log(flags.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return 0;
  },
};
