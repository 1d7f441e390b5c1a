// Multi-head attention. Self-attention uses one fused q/k/v projection (GPT-2's c_attn);
// cross-attention (Seq2Seq) projects the query and the key/value memory separately.
import { KilnError, shapeStr } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import { checkTensor } from '../ops/util.js';
import { keep, releaseData } from '../tensor/storage.js';
import { internal } from '../tensor/autograd.js';
import { concat } from '../ops/views.js';
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
 * One layer's slot in a KV cache (GPT's createCache): the keys and values of every cached position,
 * [B, H, L, D] each, or null before the first call. A cached forward leaves the keys and values
 * with the new positions appended in `nextK` / `nextV`; the owner commits them once every layer has
 * run (so a call that fails halfway leaves the cache as it was) and disposes what they replace.
 */
export interface KVSlot {
  k: Tensor | null;
  v: Tensor | null;
  nextK: Tensor | null;
  nextV: Tensor | null;
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
   * [B, H, T, L + T]; the concatenated keys and values are left in kv.nextK / kv.nextV.
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
      q = qkv.narrow(0, 0, 1).squeeze(0).contiguous();
      k = qkv.narrow(0, 1, 1).squeeze(0).contiguous();
      v = qkv.narrow(0, 2, 1).squeeze(0).contiguous();
      // The packed projection is only a layout step now: no backward reads its values (unless
      // contiguous() returned views of it, e.g. for one position).
      if (q.storage !== raw.storage && k.storage !== raw.storage && v.storage !== raw.storage) releaseData(raw);
      if (kv) {
        // The cache outlives the caller's scopes: the grown keys and values are kept, and the
        // owner disposes the ones they replace.
        if (kv.k && kv.v) {
          const kAll = keep(concat([kv.k, k], 2)), vAll = keep(concat([kv.v, v], 2));
          k.dispose();
          v.dispose();
          k = kAll;
          v = vAll;
        } else {
          k = keep(k.storage === raw.storage ? k.clone() : k);
          v = keep(v.storage === raw.storage ? v.clone() : v);
        }
        kv.nextK = k;
        kv.nextV = v;
      }
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
