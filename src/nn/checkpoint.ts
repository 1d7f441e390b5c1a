// Training checkpoints as safetensors files. The model's tensors keep their own names (so PyTorch
// and Hugging Face tools read them as a state dict); optimizer state tensors are stored as
// `optimizer.<param index>.<slot>`, an EMA's averages as `ema.<parameter name>`; kiln's metadata (config, step, RNG state, optimizer and
// scheduler state with the names of their tensors, anything extra) is JSON under __metadata__.kiln.
import { KilnError } from '../errors.js';
import { checkRngState, getRngState, setRngState, type RngState } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { Module } from './module.js';
import type { Optimizer, OptimizerState } from '../optim/optimizer.js';
import type { EMA } from '../optim/clip.js';

const OPT_PREFIX = 'optimizer.';
const EMA_PREFIX = 'ema.';

export interface CheckpointMeta {
  format: 'kiln-checkpoint';
  version: 1;
  step: number;
  config?: unknown;
  rng: RngState;
  optimizer?: { type: string; step: number; groups: Record<string, unknown>[]; state: Record<string, string>[]; steps?: number[] };
  scheduler?: { step: number };
  /** Present when the averages of an EMA are stored (as `ema.<parameter name>` tensors). */
  ema?: { updates: number };
  extra?: unknown;
}

export interface SaveCheckpointOptions {
  model: Module;
  optimizer?: Optimizer<any>;
  scheduler?: { stateDict(): { step: number } };
  /** An EMA of the model's weights: its averages are saved beside the model's. */
  ema?: EMA;
  step?: number;
  config?: unknown;
  extra?: unknown;
}

/** Writes model (+ optimizer, scheduler, RNG state, step, config) to a safetensors file, atomically. */
export function saveCheckpoint(path: string, o: SaveCheckpointOptions): void {
  const tensors: Record<string, Tensor> = { ...o.model.stateDict() };
  for (const k of Object.keys(tensors)) {
    if (k.startsWith(OPT_PREFIX)) throw new KilnError('INVALID_ARGUMENT', `saveCheckpoint: model key '${k}' clashes with the optimizer prefix`);
    if (o.ema && k.startsWith(EMA_PREFIX)) throw new KilnError('INVALID_ARGUMENT', `saveCheckpoint: model key '${k}' clashes with the EMA prefix`);
  }
  const meta: CheckpointMeta = { format: 'kiln-checkpoint', version: 1, step: o.step ?? o.optimizer?.stepCount ?? 0, rng: getRngState() };
  if (o.config !== undefined) meta.config = o.config;
  if (o.extra !== undefined) meta.extra = o.extra;
  if (o.scheduler) meta.scheduler = o.scheduler.stateDict();
  if (o.ema) {
    Object.assign(tensors, o.ema.stateDict());
    meta.ema = { updates: o.ema.updates };
  }
  if (o.optimizer) {
    const sd = o.optimizer.stateDict();
    const refs = sd.state.map((s, i) => {
      const r: Record<string, string> = {};
      for (const [slot, t] of Object.entries(s)) {
        const key = `${OPT_PREFIX}${i}.${slot}`;
        tensors[key] = t;
        r[slot] = key;
      }
      return r;
    });
    meta.optimizer = { type: o.optimizer.constructor.name, step: sd.step, groups: sd.groups, state: refs, steps: sd.steps };
  }
  saveSafetensors(path, tensors, { format: 'pt', kiln: JSON.stringify(meta) });
}

export interface LoadCheckpointOptions {
  model?: Module;
  optimizer?: Optimizer<any>;
  scheduler?: { loadStateDict(s: { step: number }): void };
  /** An EMA to restore (the checkpoint must hold one, saved with saveCheckpoint's `ema`). */
  ema?: EMA;
  /** Restore the global RNG stream (default true: a resumed run draws what the original would have). */
  restoreRng?: boolean;
  /** Strict model loading (default true). */
  strict?: boolean;
}

export interface LoadedCheckpoint {
  meta: CheckpointMeta;
  /** Every tensor in the file by name (model and optimizer): the caller's to dispose (the model and optimizer hold copies). */
  tensors: Record<string, Tensor>;
}

/** Reads a checkpoint and restores what it is given; validates everything before changing anything. */
export function loadCheckpoint(path: string, o: LoadCheckpointOptions = {}): LoadedCheckpoint {
  const file = loadSafetensors(path);
  try {
    return restore(path, file.tensors, file.metadata, o);
  } catch (e) {
    // Refused: the caller never sees the file's tensors, so they are freed here.
    for (const t of Object.values(file.tensors)) t.dispose();
    throw e;
  }
}

function restore(path: string, tensors: Record<string, Tensor>, metadata: Record<string, string>, o: LoadCheckpointOptions): LoadedCheckpoint {
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(metadata.kiln ?? 'null');
  } catch (e) {
    throw new KilnError('CHECKPOINT_CORRUPT', `${path}: kiln metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!meta || meta.format !== 'kiln-checkpoint')
    throw new KilnError('CHECKPOINT_CORRUPT', `${path}: no kiln checkpoint metadata (a plain safetensors file? use loadSafetensors)`);
  if (meta.version !== 1)
    throw new KilnError('CHECKPOINT_CORRUPT', `${path}: kiln checkpoint version ${JSON.stringify(meta.version)}; this kiln reads version 1`);
  // The step a resumed run continues from (Trainer): a bad one would replay the wrong batches and lrs.
  if (!Number.isSafeInteger(meta.step) || meta.step < 0)
    throw new KilnError('CHECKPOINT_CORRUPT', `${path}: step ${JSON.stringify(meta.step)} is not an integer >= 0`);
  let optState: OptimizerState | null = null;
  if (o.optimizer) {
    if (!meta.optimizer) throw new KilnError('INVALID_ARGUMENT', `${path}: the checkpoint holds no optimizer state`);
    if (meta.optimizer.type !== o.optimizer.constructor.name)
      throw new KilnError('INVALID_ARGUMENT', `${path}: optimizer state is for ${meta.optimizer.type}, not ${o.optimizer.constructor.name}`);
    const mo = meta.optimizer as { step?: unknown; groups?: unknown; state?: unknown };
    if (!Array.isArray(mo.groups) || !mo.groups.every((g) => g !== null && typeof g === 'object') ||
        !Array.isArray(mo.state) || !mo.state.every((r) => r !== null && typeof r === 'object'))
      throw new KilnError('CHECKPOINT_CORRUPT', `${path}: the optimizer metadata's groups / state are not lists of objects`);
    const state = meta.optimizer.state.map((refs) => {
      const s: Record<string, Tensor> = {};
      for (const [slot, key] of Object.entries(refs)) {
        const t = tensors[key];
        if (!t) throw new KilnError('CHECKPOINT_CORRUPT', `${path}: optimizer tensor '${key}' named in the metadata is missing`);
        s[slot] = t;
      }
      return s;
    });
    optState = { step: meta.optimizer.step, groups: meta.optimizer.groups, state, steps: meta.optimizer.steps };
    o.optimizer.checkStateDict(optState);
  }
  // The scheduler's step and the RNG state are checked here too, before the model changes.
  const restoreRng = o.restoreRng ?? true;
  if (restoreRng) {
    try {
      checkRngState(meta.rng, 'loadCheckpoint');
    } catch (e) {
      throw new KilnError('CHECKPOINT_CORRUPT', `${path}: ${(e as Error).message}`);
    }
  }
  const sched = o.scheduler as { factorAt?: (step: number) => number } | undefined;
  if (o.scheduler && meta.scheduler) {
    if (typeof meta.scheduler !== 'object' || !Number.isInteger(meta.scheduler.step) || meta.scheduler.step < 0)
      throw new KilnError('CHECKPOINT_CORRUPT', `${path}: scheduler state ${JSON.stringify(meta.scheduler)} has no step >= 0`);
    sched?.factorAt?.(meta.scheduler.step);
  }
  const hasEma = meta.ema !== undefined;
  const emaState: Record<string, Tensor> = {};
  if (hasEma) {
    if (meta.ema === null || typeof meta.ema !== 'object' || !Number.isSafeInteger(meta.ema.updates) || meta.ema.updates < 0)
      throw new KilnError('CHECKPOINT_CORRUPT', `${path}: EMA state ${JSON.stringify(meta.ema)} has no count of updates >= 0`);
    for (const [k, t] of Object.entries(tensors)) if (k.startsWith(EMA_PREFIX)) emaState[k] = t;
  }
  if (o.ema) {
    if (!hasEma) throw new KilnError('INVALID_ARGUMENT', `${path}: the checkpoint holds no EMA state`);
    o.ema.checkStateDict(emaState);
  }
  if (o.model) {
    const own: Record<string, Tensor> = {};
    for (const [k, t] of Object.entries(tensors)) if (!k.startsWith(OPT_PREFIX) && !(hasEma && k.startsWith(EMA_PREFIX))) own[k] = t;
    // Model first: it checks everything before copying; then the optimizer (also checked first).
    o.model.loadStateDict(own, { strict: o.strict ?? true });
  }
  if (o.optimizer && optState) o.optimizer.loadStateDict(optState);
  if (o.scheduler && meta.scheduler) o.scheduler.loadStateDict(meta.scheduler);
  if (o.ema && meta.ema) {
    o.ema.loadStateDict(emaState);
    o.ema.updates = meta.ema.updates;
  }
  if (restoreRng) setRngState(meta.rng);
  return { meta, tensors };
}
