// ID-calibrated ensembles (Kumar et al., arXiv 2207.08977): fit one temperature per member on
// in-distribution validation data only, then average the members' calibrated probabilities.
// Works on any classifier that maps a batch x to logits [n, K].
import { KilnError } from '../../errors.js';
import * as kiln from '../../index.js';
import type { Tensor } from '../../tensor/tensor.js';
import { asLabels, asLogits, calibrateTemperature, softmaxRows, type LabelsLike, type Logits, type TemperatureFit } from './calibration.js';

/** A function of a batch, or a module: anything mapping x [n, ...] to logits [n, K]. */
export type Classifier = ((x: Tensor) => Tensor) | { forward(x: Tensor): Tensor };
export interface NamedClassifier {
  name: string;
  model: Classifier;
}

/** The members' logits on x, evaluated without recording a graph, as float64 copies. */
export function memberLogits(model: Classifier, x: Tensor): Logits {
  return kiln.tidy(() => kiln.noGrad(() => asLogits(typeof model === 'function' ? model(x) : model.forward(x), 'classifier output')));
}

/** Mean of probability tables of the same shape. */
export function averageProbs(tables: Logits[]): Logits {
  if (tables.length === 0) throw new KilnError('INVALID_ARGUMENT', 'averageProbs: no members');
  const { n, classes } = tables[0];
  for (const t of tables)
    if (t.n !== n || t.classes !== classes) throw new KilnError('SHAPE_MISMATCH', `averageProbs: members give [${t.n}, ${t.classes}] and [${n}, ${classes}]`);
  const data = new Float64Array(n * classes);
  for (const t of tables) for (let i = 0; i < data.length; i++) data[i] += t.data[i] / tables.length;
  return { data, n, classes };
}

/** Average of softmax(z_m / T_m) over members (T_m = 1 for all m is the vanilla ensemble). */
export function ensembleProbs(logits: Logits[], temperatures?: number[]): Logits {
  if (temperatures && temperatures.length !== logits.length)
    throw new KilnError('INVALID_ARGUMENT', `ensembleProbs: ${temperatures.length} temperatures for ${logits.length} members`);
  return averageProbs(logits.map((z, m) => softmaxRows(z, temperatures ? temperatures[m] : 1)));
}

export interface CalibratedEnsemble {
  members: { name: string; temperature: number; fit: TemperatureFit }[];
  /** Each member's raw logits on x. */
  memberLogits(x: Tensor): Logits[];
  /** Average of the members' temperature-scaled probabilities: the ID-calibrated ensemble. */
  predictProba(x: Tensor): Logits;
  /** Average of the members' raw probabilities: the vanilla ensemble, for comparison. */
  vanillaProba(x: Tensor): Logits;
}

/**
 * Calibrates each member on in-distribution validation data (x, y) by temperature scaling (minimum
 * NLL) and returns the ensemble averaging the calibrated probabilities. Members are classifiers or
 * { name, model }; labels are class indices.
 */
export function calibratedEnsemble(members: (Classifier | NamedClassifier)[], idValidation: { x: Tensor; y: LabelsLike }): CalibratedEnsemble {
  if (members.length === 0) throw new KilnError('INVALID_ARGUMENT', 'calibratedEnsemble: no members');
  const named = members.map((m, i): NamedClassifier =>
    typeof m === 'object' && m !== null && 'model' in m ? m : { name: `member${i}`, model: m as Classifier });
  const fitted = named.map(({ name, model }) => {
    const z = memberLogits(model, idValidation.x);
    const fit = calibrateTemperature(z, asLabels(idValidation.y, z.n, z.classes, 'calibratedEnsemble'));
    return { name, temperature: fit.temperature, fit };
  });
  const all = (x: Tensor) => named.map(({ model }) => memberLogits(model, x));
  return {
    members: fitted,
    memberLogits: all,
    predictProba: (x) => ensembleProbs(all(x), fitted.map((f) => f.temperature)),
    vanillaProba: (x) => ensembleProbs(all(x)),
  };
}
