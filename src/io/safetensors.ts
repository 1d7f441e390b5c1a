// safetensors files (https://github.com/huggingface/safetensors): an 8-byte little-endian header
// length, a JSON header { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__: {..} }
// padded with spaces to 8 bytes, then the raw little-endian data. Writes are atomic (temporary
// file, fsync, rename); reads refuse anything truncated, overlapping or malformed with
// CHECKPOINT_CORRUPT naming the problem.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { KilnError, shapeStr } from '../errors.js';
import { itemSize, type DType } from '../tensor/dtype.js';
import { numel } from '../tensor/shape.js';
import { Tensor, rawSync } from '../tensor/tensor.js';
import { fromBytes } from '../ops/creation.js';

const toST: Record<DType, string> = { float32: 'F32', int32: 'I32', float64: 'F64', float16: 'F16', bfloat16: 'BF16' };
const fromST: Record<string, DType> = { F32: 'float32', I32: 'int32', F64: 'float64', F16: 'float16', BF16: 'bfloat16' };
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

function corrupt(where: string, msg: string): never {
  throw new KilnError('CHECKPOINT_CORRUPT', `${where}: ${msg}`);
}

/** Serialises tensors (any device, any strides) and a string metadata map to safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): Buffer {
  if (typeof tensors !== 'object' || tensors === null)
    throw new KilnError('INVALID_ARGUMENT', `safetensors: tensors must be an object of named Tensors, got ${tensors === null ? 'null' : typeof tensors}`);
  if (typeof metadata !== 'object' || metadata === null)
    throw new KilnError('INVALID_ARGUMENT', `safetensors: metadata must be an object of strings, got ${metadata === null ? 'null' : typeof metadata}`);
  // Null prototypes: a tensor named "__proto__" is an ordinary key here.
  const header: Record<string, unknown> = Object.create(null);
  const meta: Record<string, string> = Object.create(null);
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new KilnError('INVALID_ARGUMENT', `safetensors: metadata value for '${k}' must be a string`);
    meta[k] = v;
  }
  if (Object.keys(meta).length) header.__metadata__ = meta;
  const chunks: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new KilnError('INVALID_ARGUMENT', 'safetensors: "__metadata__" is not a tensor name');
    if (!(t instanceof Tensor)) throw new KilnError('INVALID_ARGUMENT', `safetensors: '${name}' is not a Tensor`);
    t.assertLive(`safetensors write '${name}'`);
    const bytes = rawSync(t);
    header[name] = { dtype: toST[t.dtype], shape: t.shape.slice(), data_offsets: [off, off + bytes.byteLength] };
    chunks.push(bytes);
    off += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const head = Buffer.from(json, 'utf8');
  const out = Buffer.allocUnsafe(8 + head.length + off);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  let pos = 8 + head.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.byteLength;
  }
  return out;
}

/** Parses safetensors bytes into CPU tensors; `where` names the source in errors. */
export function decodeSafetensors(buf: Uint8Array, where = 'safetensors'): SafetensorsFile {
  if (!(buf instanceof Uint8Array))
    throw new KilnError('INVALID_ARGUMENT', `${where}: decodeSafetensors takes the file's bytes (a Uint8Array / Buffer), got ${buf === null ? 'null' : typeof buf}`);
  if (buf.byteLength < 8) corrupt(where, `file is ${buf.byteLength} bytes, shorter than the 8-byte header length (truncated?)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = view.getBigUint64(0, true);
  if (n64 > BigInt(buf.byteLength - 8))
    corrupt(where, `header length ${n64} is larger than the ${buf.byteLength - 8} bytes after it (truncated or not a safetensors file)`);
  const n = Number(n64);
  if (n > MAX_HEADER) corrupt(where, `header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  if (n < 2) corrupt(where, `header length ${n} is too small for a JSON object`);
  let header: unknown;
  try {
    // fatal: bytes that are not UTF-8 are refused (as the reference reader does), not replaced by U+FFFD.
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf.subarray(8, 8 + n)));
  } catch (e) {
    corrupt(where, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) corrupt(where, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  const metadata: Record<string, string> = Object.create(null);
  const entries: [string, DType, number[], number, number][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) corrupt(where, '__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') corrupt(where, `__metadata__['${k}'] is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') corrupt(where, `entry '${name}' is not an object`);
    if (typeof e.dtype !== 'string') corrupt(where, `tensor '${name}' has no dtype`);
    const dtype = fromST[e.dtype];
    if (!dtype) corrupt(where, `tensor '${name}' has dtype ${e.dtype}; kiln reads F32, I32, F64, F16 and BF16`);
    if (!Array.isArray(e.shape) || e.shape.length > 8 || !e.shape.every((d) => Number.isInteger(d) && d >= 0))
      corrupt(where, `tensor '${name}' has a bad shape ${JSON.stringify(e.shape)}`);
    const shape = e.shape as number[];
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1])
      corrupt(where, `tensor '${name}' has bad data_offsets ${JSON.stringify(offs)}`);
    const [b, en] = offs as number[];
    const want = numel(shape) * itemSize[dtype];
    if (en - b !== want)
      corrupt(where, `tensor '${name}' (${e.dtype} ${shapeStr(shape)}) needs ${want} bytes but data_offsets span ${en - b}`);
    if (en > dataLen)
      corrupt(where, `tensor '${name}' ends at byte ${en} of the data but the file holds only ${dataLen} data bytes (truncated)`);
    entries.push([name, dtype, shape, b, en]);
  }
  // The data section is indexed whole, without holes (the format's rule): a gap or trailing bytes
  // mean a tensor entry is missing (a duplicate name, which JSON keeps once) or the file is damaged.
  const sorted = [...entries].sort((x, y) => x[3] - y[3] || x[4] - y[4]);
  let pos = 0;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i][3] === sorted[i][4]) continue;  // an empty tensor holds no bytes
    if (sorted[i][3] < pos) corrupt(where, `tensors '${sorted[i - 1][0]}' and '${sorted[i][0]}' overlap`);
    if (sorted[i][3] > pos) corrupt(where, `data bytes [${pos}, ${sorted[i][3]}) before tensor '${sorted[i][0]}' belong to no tensor (a duplicate name, or damage)`);
    pos = sorted[i][4];
  }
  if (pos !== dataLen) corrupt(where, `data bytes [${pos}, ${dataLen}) at the end belong to no tensor (a duplicate name, or trailing bytes)`);
  const tensors: Record<string, Tensor> = Object.create(null);
  for (const [name, dtype, shape, b, en] of entries) {
    try {
      tensors[name] = fromBytes(buf.subarray(dataStart + b, dataStart + en), shape, dtype);
    } catch (e) {
      // A shape kiln refuses (an empty tensor with a dimension past 2^46, say): free what was read.
      for (const t of Object.values(tensors)) t.dispose();
      corrupt(where, `tensor '${name}' (${dtype} ${shapeStr(shape)}): ${(e as Error).message}`);
    }
  }
  return { tensors, metadata };
}

/** Writes bytes to `path` atomically: a temporary file in the same folder, fsync, rename, fsync the folder. */
export function writeFileAtomic(path: string, data: Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'w', 0o644);
    let off = 0;
    while (off < data.byteLength) off += writeSync(fd, data, off, data.byteLength - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* some file systems cannot fsync a directory; the rename itself is still atomic */
  }
}

export function saveSafetensors(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  const bytes = encodeSafetensors(tensors, metadata);
  try {
    writeFileAtomic(path, bytes);
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `saveSafetensors: cannot write ${path}: ${(e as Error).message}`);
  }
}

export function loadSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new KilnError('INVALID_ARGUMENT', `loadSafetensors: cannot read ${path}: ${(e as Error).message}`);
  }
  return decodeSafetensors(buf, path);
}
