// Runs kiln commands in-process with console output captured (stdout lines kept, stderr dropped).
import { runKiln } from '../../src/cli/kiln.js';

export async function runKilnQuiet(...argvs: string[][]): Promise<{ codes: number[]; logs: string[] }> {
  const logs: string[] = [], codes: number[] = [];
  const log = console.log, err = console.error;
  console.log = (s: string) => logs.push(String(s));
  console.error = () => {};
  try {
    for (const argv of argvs) codes.push(await runKiln(argv));
  } finally {
    console.log = log;
    console.error = err;
  }
  return { codes, logs };
}
