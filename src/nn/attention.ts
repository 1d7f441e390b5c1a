// Multi-head attention. Self-attention uses one fused q/k/v projection (GPT-2's c_attn);
// cross-attention (Seq2Seq) projects the query and the key/value memory separately.
import { KilnError, shapeStr } from '../errors.js';
import { Tensor, empty, stridedCopy } from '../tensor/tensor.js';
import { checkTensor } from '../ops/util.js';
import { keep, releaseData } from '../tensor/storage.js';
import { internal } from '../tensor/autograd.js';
import { scaledDotProductAttention } from './functional.js';
import { Dropout, Linear, type LayerOptions } from './layers.js';
import { Module } from './module.js';

export interface AttentionLayerOptions extends LayerOptions {
  causal?: boolean;
  dropout?: number;
  bias?: boolean;
  /** Separate key/value projection for cross-attention (memory of width kvDim, default nEmbd). */
  cross?: boolean;
  kvDim?: number;
}

/**
 * One layer's slot in a KV cache (GPT's createCache): capacity buffers [B, H, C, D] for the keys and
 * values whose first `length` positions hold the cached ones (C >= length; the rest is room), or
 * null before the first call. A cached forward writes its new keys and values into the room, at
 * positions length .. length + T (not yet part of the cache: a call that fails halfway leaves it as
 * it was), or, when they do not fit, into new buffers of capacity max(length + T, growTo) that
 * start with a copy of the cached positions; it leaves the buffers in `nextK` / `nextV` (the same
 * ones or the new ones). The owner commits them once every layer has run and disposes what they
 * replace, or on failure disposes new buffers (abort).
 */
export interface KVSlot {
  k: Tensor | null;
  v: Tensor | null;
  /** Cached positions in k and v (default: all of k's C positions). */
  length?: number;
  /** Capacity a call that outgrows the buffers gives the new ones (the owner's growth policy; default: exact). */
  growTo?: number;
  nextK: Tensor | null;
  nextV: Tensor | null;
}

/** buf[:, :, at : at + src.shape[2]] = src (outside autograd). */
function writeAt(buf: Tensor, at: number, src: Tensor): void {
  const dst = buf.narrow(2, at, src.shape[2]);
  stridedCopy(dst, src);
  dst.dispose();
}

/**
 * Writes k and v [B, H, T, D] (any layout) after the slot's cached positions, in place when they
 * fit, and returns views of the keys and values so far, [B, H, length + T, D] with heads C * D
 * apart (the fused attention reads them without a copy on the CPU).
 */
function appendToSlot(kv: KVSlot, k: Tensor, v: Tensor): [Tensor, Tensor] {
  const [B, H, T, D] = k.shape;
  const L = kv.k ? kv.length ?? kv.k.shape[2] : 0;
  let kb = kv.k, vb = kv.v;
  if (!kb || !vb || L + T > kb.shape[2]) {
    const cap = Math.max(L + T, kv.growTo ?? 0);
    // Kept: the cache outlives the caller's scopes. Left in next* at once, so abort frees them.
    kb = kv.nextK = keep(empty([B, H, cap, D], k.dtype, k.device));
    vb = kv.nextV = keep(empty([B, H, cap, D], v.dtype, v.device));
    for (const [dst, src] of [[kb, kv.k], [vb, kv.v]] as const) {
      if (L === 0 || !src) continue;
      const old = src.narrow(2, 0, L);
      writeAt(dst, 0, old);
      old.dispose();
    }
  } else {
    kv.nextK = kb;
    kv.nextV = vb;
  }
  writeAt(kb, L, k);
  writeAt(vb, L, v);
  return [kb.narrow(2, 0, L + T), vb.narrow(2, 0, L + T)];
}

/** [B, T, H*D] -> [B, H, T, D] */
function splitHeads(x: Tensor, nHead: number): Tensor {
  const [B, T, C] = x.shape;
  return x.reshape([B, T, nHead, C / nHead]).permute([0, 2, 1, 3]);
}

export class MultiheadAttention extends Module {
  cAttn: Linear | null = null;
  qProj: Linear | null = null;
  kvProj: Linear | null = null;
  cProj: Linear;
  residDrop: Dropout;
  readonly causal: boolean;
  readonly attnDropout: number;

  constructor(readonly nEmbd: number, readonly nHead: number, opts: AttentionLayerOptions = {}) {
    super();
    opts ??= {};
    if (!Number.isInteger(nHead) || nHead < 1 || nEmbd % nHead !== 0)
      throw new KilnError('INVALID_ARGUMENT', `MultiheadAttention: nEmbd ${nEmbd} must be a multiple of nHead ${nHead}`);
    const o = { dtype: opts.dtype, device: opts.device, bias: opts.bias };
    if (opts.cross) {
      this.qProj = new Linear(nEmbd, nEmbd, o);
      this.kvProj = new Linear(opts.kvDim ?? nEmbd, 2 * nEmbd, o);
    } else this.cAttn = new Linear(nEmbd, 3 * nEmbd, o);
    this.cProj = new Linear(nEmbd, nEmbd, o);
    const p = opts.dropout ?? 0;
    if (typeof p !== 'number' || !(p >= 0 && p < 1))
      throw new KilnError('INVALID_ARGUMENT', `MultiheadAttention: dropout must be a number in [0, 1), got ${String(p)}`);
    this.residDrop = new Dropout(p);
    this.causal = opts.causal ?? false;
    this.attnDropout = opts.dropout ?? 0;
  }

  /**
   * x [B, T, C]; memory [B, S, kvDim] for cross-attention; mask broadcastable to [B, H, T, S].
   * With `kv` (self-attention only), x holds new positions only: they attend to the slot's cached
   * keys and values followed by their own (causal aligned bottom-right), so the mask covers
   * [B, H, T, L + T]; the new keys and values are written after the cached ones (see KVSlot).
   */
  forward(x: Tensor, memory?: Tensor | null, mask?: Tensor | null, kv?: KVSlot | null): Tensor {
    checkTensor('MultiheadAttention', x, 'input');
    if (x.ndim !== 3 || x.shape[2] !== this.nEmbd)
      throw new KilnError('SHAPE_MISMATCH', `MultiheadAttention: input ${shapeStr(x.shape)}, want [B, T, ${this.nEmbd}]`);
    const [B, T, C] = x.shape;
    if (kv && !this.causal)
      throw new KilnError('INVALID_ARGUMENT', `MultiheadAttention: a KV cache needs causal attention (cached positions never see later ones); input ${shapeStr(x.shape)}`);
    let q: Tensor, k: Tensor, v: Tensor;
    if (this.cAttn) {
      if (memory != null)
        throw new KilnError('INVALID_ARGUMENT', `MultiheadAttention: self-attention takes no memory (got ${shapeStr(checkTensor('MultiheadAttention', memory, 'memory').shape)}); construct it with cross: true`);
      const raw = this.cAttn.forward(x);
      const qkv = raw.reshape([B, T, 3, this.nHead, C / this.nHead]).permute([2, 0, 3, 1, 4]);
      const part = (i: number) => qkv.narrow(0, i, 1).squeeze(0);
      q = part(0).contiguous();
      // With a cache the new keys and values go straight into its buffers: no copy of their own.
      [k, v] = kv ? appendToSlot(kv, part(1), part(2)) : [part(1).contiguous(), part(2).contiguous()];
      // The packed projection is only a layout step now: no backward reads its values (unless
      // contiguous() returned views of it, e.g. for one position).
      if (q.storage !== raw.storage && k.storage !== raw.storage && v.storage !== raw.storage) releaseData(raw);
    } else {
      if (kv) throw new KilnError('INVALID_ARGUMENT', `MultiheadAttention: a KV cache is for self-attention, not cross-attention (input ${shapeStr(x.shape)})`);
      if (!memory) throw new KilnError('INVALID_ARGUMENT', 'MultiheadAttention: cross-attention needs a memory tensor');
      checkTensor('MultiheadAttention', memory, 'memory');
      const kvDim = this.kvProj!.inFeatures;
      if (memory.ndim !== 3 || memory.shape[0] !== B || memory.shape[2] !== kvDim)
        throw new KilnError('SHAPE_MISMATCH', `MultiheadAttention: memory ${shapeStr(memory.shape)} for input ${shapeStr(x.shape)}, want [${B}, S, ${kvDim}]`);
      const S = memory.shape[1];
      q = splitHeads(this.qProj!.forward(x), this.nHead);
      const kvm = this.kvProj!.forward(memory).reshape([B, S, 2, this.nHead, C / this.nHead]).permute([2, 0, 3, 1, 4]);
      k = kvm.narrow(0, 0, 1).squeeze(0);
      v = kvm.narrow(0, 1, 1).squeeze(0);
    }
    const y = scaledDotProductAttention(q, k, v, {
      causal: this.causal,
      mask,
      dropout: this.attnDropout,
      training: this.training,
    });
    internal(q, y);
    if (!kv) internal(k, v);
    const merged = internal(y.permute([0, 2, 1, 3]).reshape([B, T, C]));
    return this.residDrop.forward(this.cProj.forward(merged));
  }
}
