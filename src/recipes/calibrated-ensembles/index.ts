// kiln.calibration: model-agnostic calibration tools (temperature scaling, ECE, Brier, NLL,
// reliability diagrams), ID-calibrated ensembles, and the spurious-feature shift generator.
export {
  calibrateTemperature, calibrationReport, ece, brierScore, nll, accuracy, softmaxRows, scaleLogits, binaryLabels,
  asLogits, asLabels, DEFAULT_BINS, MAX_BINS, TEMPERATURE_METHOD,
} from './calibration.js';
export type { Logits, LogitsLike, LabelsLike, Binning, ReliabilityBin, CalibrationReport, TemperatureFit } from './calibration.js';
export { calibratedEnsemble, ensembleProbs, averageProbs, memberLogits } from './ensemble.js';
export type { Classifier, NamedClassifier, CalibratedEnsemble } from './ensemble.js';
export { reliabilitySpec, writeReliabilityDiagram } from './reliability.js';
export type { ReliabilityCurve } from './reliability.js';
export { generateShift, dropColumns, featureColumns, coreDims, spuriousAgreementOf, DEFAULT_SHIFT, SHIFT_SPLITS } from './shift.js';
export type { ShiftConfig, ShiftData, ShiftSplit, CoreShape } from './shift.js';
