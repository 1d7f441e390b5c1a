// `kiln simulacra run`: trains a word-level kiln GPT on the synthetic world's community documents
// (or uses an OpenAI-compatible endpoint), simulates held-out communities with it and writes
// results.json, table.txt, index.html (the browsable page) and the model (model/, servable by
// `kiln serve --model <run>/model`).
import '../../index.js';
import { join } from 'node:path';
import { flagInt, flagNumber, flagPositive, flagString, MAX_SEED, parseVerb, UsageError, type Command } from '../../cli/args.js';
import { saveKilnLanguageModel } from '../bigbench/kiln-model.js';
import { KilnError } from '../../errors.js';
import { EndpointError, OpenAICompletionsModel, openAIOptionsFrom } from '../bigbench/openai.js';
import { acceptanceLines, prepareRunDir, writeRun } from '../report.js';
import { DEFAULT_CONFIG, runSimulacra, type SimulacraConfig, type SimulacraResult } from './experiment.js';
import { rate, type Count } from './measure.js';
import { writePage } from './page.js';
import { OpenAISampler, type Sampler } from './sampler.js';
import { BEHAVIOURS, RULES, TOPICS, type Topic } from './world.js';

const D = DEFAULT_CONFIG;
const HELP = `usage: kiln simulacra run [options]

Social simulacra (Park et al., arXiv 2208.04024) at small scale. A synthetic world stands in for
Reddit: communities (a goal topic; rules from: ${BEHAVIOURS.map((b) => RULES[b]).join(', ')}),
personas (friendly, neutral or troll) and threads whose behaviour rates are known. A word-level
kiln GPT (${D.model.nLayer} layers, width ${D.model.nEmbd}, context ${D.model.blockSize} words) learns the world's community documents for
${D.train.steps} steps of ${D.train.batchSize}; the ${D.goal} communities with all rules, or all but one, are held out. The
simulator then prompts it for those held-out communities: personas from ${D.seedPersonas} seed personas, posts,
reply chains, what-if injections (a hostile or a friendly reply) and multiverse versions of a
thread; a keyword labeller counts insults, self promotion, memes and off-topic posts, next to the
world's own rates.

options:
  --steps N          training steps (default ${D.train.steps})
  --batch N          documents per step (default ${D.train.batchSize})
  --lr X             peak learning rate (default ${D.train.lr})
  --layers N, --width N, --heads N
                     model size (default ${D.model.nLayer}, ${D.model.nEmbd}, ${D.model.nHead})
  --goal TOPIC       the evaluated communities' goal, one of ${TOPICS.join(', ')} (default ${D.goal})
  --no-holdout       train on the evaluated configurations too
  --threads N        threads per evaluated community (default ${D.threads})
  --personas N       personas generated per community (default ${D.personaPool})
  --seed-personas N  the designer's seed personas, members of every community (default ${D.seedPersonas})
  --whatif N         threads per what-if arm (default ${D.whatIfThreads})
  --versions K       multiverse versions per thread (default ${D.versions}), over --multiverse N threads (default ${D.multiverseThreads})
  --temperature X    sampling temperature (default ${D.temperature})
  --top-p X          nucleus mass (default ${D.topP})
  --model openai:URL simulate with an OpenAI-compatible /completions endpoint (e.g. http://127.0.0.1:8000/v1,
                     a \`kiln serve\` over a trained run's model/) instead of training
  --model-name NAME  the endpoint's model name (default OPENAI_MODEL, else its first /models entry)
  --api-key KEY      the endpoint's API key (default OPENAI_API_KEY)
  --seed S           seed of the world, the training and the sampling (default ${D.seed})
  --out DIR          run folder (default runs/simulacra-<date>)
  --json             print the results as JSON instead of a table
  -h, --help         this help`;

const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '-');
const cell = (c: Count) => `${f3(rate(c))} (${c.k}/${c.n})`;

export function formatResult(r: SimulacraResult): string {
  const lines: string[] = [];
  const m = r.model;
  lines.push(m.params !== undefined
    ? `model ${m.spec}: ${m.params} parameters, vocabulary ${m.vocabSize} words, ${r.config.train.steps} steps x ${r.config.train.batchSize} documents in ${m.trainSeconds!.toFixed(0)} s, final loss ${m.finalLoss!.toFixed(3)}`
    : `model ${m.spec}`);
  lines.push(`held out of training: ${r.heldOut.join(' ') || 'nothing'}`);
  lines.push('', 'generated rate (count) | world rate, per configuration of the ' + r.config.goal + ' community:');
  const head = ['configuration', 'personas f/n/t', 'insult posts', 'world', 'insult replies', 'world', 'promo msgs', 'world', 'meme msgs', 'world', 'off-topic posts', 'world'];
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  lines.push(row(head), row(head.map(() => '---')));
  for (const c of r.communities) {
    const msgs = (x: typeof c.rates, b: 'promo' | 'meme'): Count => ({ k: x.posts[b].k + x.replies[b].k, n: x.posts[b].n + x.replies[b].n });
    lines.push(row([
      c.label, `${c.personaMix.friendly}/${c.personaMix.neutral}/${c.personaMix.troll}`,
      cell(c.rates.posts.insult), f3(rate(c.world.posts.insult)), cell(c.rates.replies.insult), f3(rate(c.world.replies.insult)),
      cell(msgs(c.rates, 'promo')), f3(rate(msgs(c.world, 'promo'))), cell(msgs(c.rates, 'meme')), f3(rate(msgs(c.world, 'meme'))),
      cell(c.rates.posts.offtopic), f3(c.worldPostExpected.offtopic),
    ]));
  }
  lines.push('', `personas f/n/t: friendly/neutral/troll among the generated ones (world mix 0.50/0.35/0.15)`);
  const w = r.whatIf;
  lines.push(`what-if (${w.label}): insults in the ${r.config.follow} replies after an injected hostile reply ${cell(w.counts.hostile)}, world ${f3(rate(w.world.hostile))}; after a friendly one ${cell(w.counts.friendly)}, world ${f3(rate(w.world.friendly))}`);
  const mv = r.multiverse;
  lines.push(`multiverse (${mv.label}): ${mv.distinct.k} versions of ${mv.distinct.distinct.length} threads, distinct reply chains per thread ${mv.distinct.distinct.join(' ')}`);
  lines.push(...acceptanceLines(r.acceptance));
  lines.push(`\nfinished in ${r.seconds.toFixed(0)} s`);
  return lines.join('\n');
}

/** `openai:<url>` -> a sampler (the model name from --model-name, OPENAI_MODEL or the endpoint's /models). */
async function samplerFrom(spec: string, modelName: string | undefined, apiKey: string | undefined): Promise<Sampler> {
  if (!spec.startsWith('openai:')) throw new UsageError(`--model: expected openai:<url>, got '${spec}' (without --model a kiln GPT is trained)`);
  const url = spec.slice('openai:'.length);
  if (!/^https?:\/\//.test(url)) throw new UsageError(`--model: openai:<url> needs an http(s) URL, got '${url}'`);
  const o = openAIOptionsFrom({ apiKey, model: modelName });
  let name = o.model;
  try {
    name ??= await OpenAICompletionsModel.firstServedModel(url, o.apiKey);
  } catch (e) {
    if (e instanceof EndpointError) throw new KilnError('ENDPOINT_ERROR', `simulacra: ${e.message}`);
    throw e;
  }
  return new OpenAISampler(url, name, o.apiKey);
}

export const command: Command = {
  name: 'simulacra',
  summary: 'social simulacra: personas, threads, what-ifs from a community\'s goal and rules (arXiv 2208.04024)',
  async run(argv: string[]): Promise<number> {
    // `kiln simulacra serve [--run DIR] ...`: the designer web UI over a run's model (its help: serve --help).
    if (argv[0] === 'serve') return (await import('./server.js')).serveCommand(argv.slice(1));
    if (argv.length === 1 && (argv[0] === '--help' || argv[0] === '-h')) console.log('usage: kiln simulacra serve --run DIR [options]   (the web UI; see kiln simulacra serve --help)\n');
    const flags = parseVerb(argv, {
      command: 'simulacra', verb: 'run', help: HELP, booleans: ['no-holdout'],
      options: ['steps', 'batch', 'lr', 'layers', 'width', 'heads', 'goal', 'no-holdout', 'threads', 'personas', 'seed-personas', 'whatif', 'versions', 'multiverse',
        'temperature', 'top-p', 'model', 'model-name', 'api-key', 'seed', 'out', 'json'],
    });
    if (typeof flags === 'number') return flags;
    const goal = flagString(flags, 'goal', D.goal)!;
    if (!TOPICS.includes(goal as Topic)) throw new UsageError(`--goal: unknown topic '${goal}' (expected ${TOPICS.join(', ')})`);
    const temperature = flagNumber(flags, 'temperature', D.temperature)!;
    if (!(temperature >= 0 && temperature <= 10)) throw new UsageError(`--temperature must be in [0, 10], got ${temperature}`);
    const topP = flagNumber(flags, 'top-p', D.topP)!;
    if (!(topP > 0 && topP <= 1)) throw new UsageError(`--top-p must be in (0, 1], got ${topP}`);
    const cfg: SimulacraConfig = {
      ...D,
      model: { ...D.model, nLayer: flagInt(flags, 'layers', D.model.nLayer, 1, 64)!, nEmbd: flagInt(flags, 'width', D.model.nEmbd, 1, 4096)!, nHead: flagInt(flags, 'heads', D.model.nHead, 1, 64)! },
      train: { ...D.train, steps: flagInt(flags, 'steps', D.train.steps, 1)!, batchSize: flagInt(flags, 'batch', D.train.batchSize, 1, 4096)!, lr: flagPositive(flags, 'lr', D.train.lr, 1) },
      goal: goal as Topic,
      heldOut: flags['no-holdout'] !== true,
      threads: flagInt(flags, 'threads', D.threads, 1, 10000)!,
      personaPool: flagInt(flags, 'personas', D.personaPool, 1, 28)!,
      seedPersonas: flagInt(flags, 'seed-personas', D.seedPersonas, 1, 8)!,
      whatIfThreads: flagInt(flags, 'whatif', D.whatIfThreads, 1, 10000)!,
      versions: flagInt(flags, 'versions', D.versions, 2, 100)!,
      multiverseThreads: flagInt(flags, 'multiverse', D.multiverseThreads, 1, 1000)!,
      temperature,
      topP,
      seed: flagInt(flags, 'seed', D.seed, 0, MAX_SEED)!,
    };
    if (cfg.model.nEmbd % cfg.model.nHead !== 0) throw new UsageError(`--width ${cfg.model.nEmbd} must be a multiple of --heads ${cfg.model.nHead}`);
    const modelSpec = flagString(flags, 'model');
    const sampler = modelSpec === undefined ? undefined : await samplerFrom(modelSpec, flagString(flags, 'model-name'), flagString(flags, 'api-key'));
    const trainingFlags = ['steps', 'batch', 'lr', 'layers', 'width', 'heads', 'no-holdout'].filter((k) => flags[k] !== undefined);
    if (sampler && trainingFlags.length)
      console.error(`[simulacra] warning: --model ${modelSpec} simulates with the endpoint; ${trainingFlags.map((k) => `--${k}`).join(', ')} (training options) are ignored`);
    if (!sampler && (flags['model-name'] !== undefined || flags['api-key'] !== undefined))
      throw new UsageError('--model-name and --api-key need --model openai:<url>');
    const out = prepareRunDir(flags, 'simulacra');
    const result = await runSimulacra(cfg, (l) => console.error(`[simulacra] ${l}`), {
      sampler,
      onModel: (model, tok) => saveKilnLanguageModel(join(out, 'model'), model, tok, { recipe: 'simulacra', seed: cfg.seed }),
    });
    await writeRun(out, result, formatResult(result), {}, !!flags.json, ['index.html', ...(sampler ? [] : ['model/'])]);
    writePage(out, result);
    return 0;
  },
};
