// BIG-bench metrics against values computed by hand (and, for tie-breaking, by BIG-bench's
// own algorithm in Python: sha256 of the float64 bytes).
import test from 'ava';
import {
  argmaxTieBreak, brierScore, chanceBrierScore, chanceMultipleChoiceGrade, exactStrMatch, expectedCalibrationError,
  logLikelihood, logSumExp, multipleChoiceGrade, normalizeLogProbs, postprocessOutput,
} from '../src/recipes/bigbench/metrics.js';
import { corpusBleu, corpusRouge, rougePair, rougeTokenize, tokenize13a, tokenizeIntl } from '../src/recipes/bigbench/text-metrics.js';
import { normalize, scoreRange, computeScores, type ExampleOutput } from '../src/recipes/bigbench/scoring.js';
import { isEmergent, scalingStats } from '../src/recipes/bigbench/emergence.js';
import { Rng } from '../src/recipes/bigbench/rng.js';

const close = (t: { true: (v: boolean, m?: string) => void }, a: number, b: number, tol = 1e-3) => t.true(Math.abs(a - b) <= tol, `${a} != ${b}`);

test('BLEU: one mismatching last token (p = 4/5, 3/4, 2/3, 1/2) gives 100 * 0.2^(1/4)', (t) => {
  close(t, corpusBleu(['a b c d e'], [['a b c d f']]).score, 100 * 0.2 ** 0.25); // 66.874
});

test('BLEU: exponential smoothing of zero n-gram matches (sacrebleu exp)', (t) => {
  // p1 = 3/4, p2 = 1/3, p3 = 0/2 -> 1/(2*2), p4 = 0/1 -> 1/(4*1)
  close(t, corpusBleu(['a b c d'], [['a b x d']]).score, 100 * (0.75 * (1 / 3) * 0.25 * 0.25) ** 0.25); // 35.355
});

test('BLEU: brevity penalty, closest reference, corpus pooling, empty output', (t) => {
  close(t, corpusBleu(['a b c d'], [['a b c d e f']]).score, 100 * Math.exp(1 - 6 / 4)); // 60.653
  // The closest of the references is the 4-token one: no brevity penalty, exact match.
  close(t, corpusBleu(['a b c d'], [['a b c d e f g h', 'a b c d']]).score, 100);
  // Counts pool over the corpus: 2 sentences, 5 + 4 tokens.
  const r = corpusBleu(['a b c d e', 'w x y z'], [['a b c d e'], ['w x y q']]);
  close(t, r.score, 100 * ((8 / 9) * (6 / 7) * (4 / 5) * (2 / 3)) ** 0.25);
  t.is(corpusBleu([''], [['a b c d']]).score, 0);
  t.is(corpusBleu(['a b'], [['a b']]).score, 0); // no 4-grams at all: sacrebleu gives 0 too
});

test('BLEU tokenizers: intl splits punctuation and symbols but keeps decimals; 13a as mteval', (t) => {
  t.deepEqual(tokenizeIntl('Hello, world! It costs $5 or 3.14 today.'), ['Hello', ',', 'world', '!', 'It', 'costs', '$', '5', 'or', '3.14', 'today', '.']);
  t.deepEqual(tokenize13a('Hello, world! It costs $5 or 3.14 today.'), ['Hello', ',', 'world', '!', 'It', 'costs', '$', '5', 'or', '3.14', 'today', '.']);
  close(t, corpusBleu(['the cat sat on the mat.'], [['the cat sat on the mat .']]).score, 100);
});

test('ROUGE-1/2/Lsum on a hand-checked pair', (t) => {
  // ref 6 unigrams, pred 5, overlap 5 -> F = 10/11; bigrams 3 of (4, 5) -> F = 2/3; LCS = 5 tokens.
  const s = rougePair('the cat sat on the mat', 'the cat on the mat');
  close(t, s.rouge1, 10 / 11, 1e-9);
  close(t, s.rouge2, 2 / 3, 1e-9);
  close(t, s.rougeLsum, 10 / 11, 1e-9);
});

test('rougeLsum uses the union LCS over sentences (split on newlines)', (t) => {
  // r1 = [a b c] with [a c] -> {a, c}; r2 = [d e] with [d x e] -> {d, e}: 4 hits of 5 and 5
  close(t, rougePair('a b c\nd e', 'a c\nd x e').rougeLsum, 0.8, 1e-9);
  t.deepEqual(rougeTokenize("It's 3 O'Clock, déjà vu"), ['it', 's', '3', 'o', 'clock', 'd', 'j', 'vu']);
});

test('corpus ROUGE takes the best reference per example, scaled to 100, averaged', (t) => {
  const r = corpusRouge(['good night', 'the blue house'], [['bad', 'good night'], ['the red house']]);
  close(t, r.rouge1, (100 + 100 * (2 / 3)) / 2);
});

test('exact_str_match compares the response to every target, without normalisation', (t) => {
  t.is(exactStrMatch(['hello', 'Thanks', 'x'], [['hello', 'hi'], ['thanks'], ['x']]), 2 / 3);
});

test('argmax ties break as BIG-bench does (sha256 of the float64 bytes)', (t) => {
  // Expected indices computed with BIG-bench's algorithm in Python (hashlib + struct '<d').
  t.is(argmaxTieBreak([0, 0]), 1);
  t.is(argmaxTieBreak([-1, -1, -3]), 1);
  t.is(argmaxTieBreak([0.5, 0.5, 0.5]), 2);
  t.is(argmaxTieBreak([-2, -1, -3]), 1);
});

test('multiple_choice_grade, chance level, Brier score and ECE by hand', (t) => {
  const lp = (ps: number[]) => ps.map(Math.log);
  const recs = [
    { choices: ['a', 'b'], scores: [1, 0], logProbs: lp([0.75, 0.25]) },
    { choices: ['a', 'b', 'c', 'd'], scores: [0, 0, 1, 0], logProbs: lp([0.1, 0.2, 0.3, 0.4]) },
  ];
  t.is(multipleChoiceGrade(recs), 0.5);
  close(t, chanceMultipleChoiceGrade(recs), (1 / 2 + 1 / 4) / 2, 1e-12);
  // ((.25^2 + .25^2)/2 + (.01 + .04 + .49 + .16)/4) / 2
  close(t, brierScore(recs), (0.0625 + 0.175) / 2, 1e-12);
  close(t, chanceBrierScore(recs), ((0.25 + 0.25) / 2 + (0.0625 * 3 + 0.5625) / 4) / 2, 1e-12);
  // bins: 0.75 correct -> |1 - .75|, 0.4 wrong -> |0 - .4|, each weighted 1/2
  close(t, expectedCalibrationError(recs), (0.25 + 0.4) / 2, 1e-12);
  const twoSame = [0.9, 0.9].map((c, i) => ({ choices: ['a', 'b'], scores: i === 0 ? [1, 0] : [0, 1], logProbs: lp([c, 1 - c]) }));
  close(t, expectedCalibrationError(twoSame), 0.4, 1e-12);
});

test('log-probabilities renormalise over choices; log_likelihood averages targets then examples', (t) => {
  close(t, logSumExp([Math.log(0.2), Math.log(0.3)]), Math.log(0.5), 1e-12);
  const n = normalizeLogProbs([Math.log(0.2), Math.log(0.3)]);
  close(t, Math.exp(n[0]), 0.4, 1e-12);
  t.is(logLikelihood([[-1, -3], [-2]]), -2);
  t.deepEqual(normalizeLogProbs([-Infinity, -Infinity]), [-Math.log(2), -Math.log(2)]);
  t.is(multipleChoiceGrade([{ choices: ['a', 'b'], scores: [0, 1], logProbs: normalizeLogProbs([-Infinity, -Infinity]) }]), 1); // tie -> index 1
  t.throws(() => argmaxTieBreak([NaN, 0]), { message: /NaN/ });
});

test('post-processing: stop string kept as BIG-bench keeps it, then the first regex match', (t) => {
  t.is(postprocessOutput('Paris\nQ: next', '\n'), 'Paris\n');
  t.is(postprocessOutput('\nParis', '\n'), '\nParis'); // a stop string at index 0 is ignored (BIG-bench)
  t.is(postprocessOutput(' Paris. It is big', undefined, '[^\\.\\?\\!\\;\\n]+'), ' Paris');
  t.is(postprocessOutput('the answer is 42 and 7', undefined, '(\\d+)'), '42');
  t.is(postprocessOutput('no digits', undefined, '\\d+'), '');
  t.is(postprocessOutput('Paris\nfoo', '\n', '[^\\n]+'), 'Paris');
  t.throws(() => postprocessOutput('ab', undefined, '(a)(b)'), { message: /2 capture groups/ });
});

test('normalisation: chance maps to 0, best to 100; lower-is-better metrics flip', (t) => {
  t.is(normalize(0.25, 0.25, 1), 0);
  t.is(normalize(1, 0.25, 1), 100);
  t.is(normalize(0.5, 1, 0), 50);
  t.is(normalize(1, 1, 1), null);
  const outs: ExampleOutput[] = [
    { index: 0, prompt: '', targets: ['a'], shotIndices: [], choices: ['a', 'b'], choiceScores: [1, 0], choiceLogProbs: [0, -1] },
    { index: 1, prompt: '', targets: ['c'], shotIndices: [], choices: ['a', 'b', 'c', 'd'], choiceScores: [0, 0, 1, 0], choiceLogProbs: [0, -1, -2, -3] },
  ];
  t.deepEqual(scoreRange('multiple_choice_grade', outs), { low: (0.5 + 0.25) / 2, high: 1 });
  t.deepEqual(scoreRange('bleu', outs), { low: 0, high: 100 });
  const s = computeScores(['multiple_choice_grade'], outs);
  t.is(s.scores.multiple_choice_grade, 0.5);
});

test('linearity and breakthroughness (I over root mean / root median squared steps)', (t) => {
  const lin = scalingStats([0, 10, 20, 30]);
  t.deepEqual(lin, { improvement: 30, linearity: 3, breakthroughness: 3 });
  const jump = scalingStats([0, 0, 0, 50]);
  t.is(jump.improvement, 50);
  close(t, jump.linearity, 50 / Math.sqrt(2500 / 3), 1e-9);
  t.is(jump.breakthroughness, Infinity);
  const down = scalingStats([10, 5, 0]);
  t.deepEqual(down, { improvement: -10, linearity: -2, breakthroughness: -2 });
  const few = scalingStats([1, 2, 3, 60]); // steps^2 1, 1, 3249: median 1
  close(t, few.breakthroughness, 59, 1e-9);
  t.true(isEmergent([1, 2, 3, 60], few).emergent);
  t.false(isEmergent([0, 10, 20, 30], lin).emergent);
  t.false(isEmergent([40, 50, 60, 70], scalingStats([40, 50, 60, 70])).emergent);
  t.throws(() => scalingStats([1]));
});

test('the PRNG is reproducible and samples without replacement', (t) => {
  const a = new Rng(42, 'task', '3');
  const b = new Rng(42, 'task', '3');
  t.deepEqual(Array.from({ length: 5 }, () => a.nextU32()), Array.from({ length: 5 }, () => b.nextU32()));
  t.notDeepEqual(new Rng(42, 'task', '3').permutation([1, 2, 3, 4, 5, 6, 7, 8]), new Rng(43, 'task', '3').permutation([1, 2, 3, 4, 5, 6, 7, 8]));
  const r = new Rng(1);
  for (let i = 0; i < 200; i++) {
    const s = r.sample([0, 1, 2, 3, 4, 5], 4);
    t.is(new Set(s).size, 4);
  }
  // Uniform enough: each of 4 positions drawn about 1/4 of the time.
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 40000; i++) counts[r.int(4)]++;
  for (const c of counts) t.true(Math.abs(c - 10000) < 400, String(counts));
});
