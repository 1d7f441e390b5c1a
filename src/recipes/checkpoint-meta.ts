// A kiln checkpoint's metadata (step, config) read from its safetensors header alone, without
// loading its tensors: for checks that must come before a load (a resume's step, a saved shape).
import { closeSync, openSync, readSync } from 'node:fs';

/** The checkpoint's kiln metadata, or undefined when the file is missing or not a kiln checkpoint (the load reports those). */
export function checkpointMeta(path: string): { step?: unknown; config?: unknown } | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    if (n > 100_000_000) return undefined;
    const header = Buffer.alloc(n);
    readSync(fd, header, 0, n, 8);
    const meta = JSON.parse(JSON.parse(header.toString('utf8')).__metadata__.kiln);
    return typeof meta === 'object' && meta !== null ? meta : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The config a checkpoint was saved with (undefined when it has none). */
export function checkpointConfig(path: string): unknown {
  return checkpointMeta(path)?.config;
}
