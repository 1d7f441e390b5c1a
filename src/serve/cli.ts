// `kiln serve`: an OpenAI-compatible completions endpoint over a kiln language model, until
// SIGINT or SIGTERM (then the server closes and the worker is terminated).
import { checkFlags, flagInt, flagString, parseArgs, UsageError, type Command } from '../cli/args.js';
import { startServer, type KilnServer } from './server.js';

const HELP = `usage: kiln serve --model <dir> [options]

Serves a kiln language model (a token-mode kiln GPT and its tokenizer) over HTTP in the OpenAI
completions format: GET /v1/models and POST /v1/completions (prompt as a string or list, n,
max_tokens, temperature, top_p, stop, echo, logprobs, seed). Greedy at temperature 0, else
temperature / top-p sampling, reproducible for a given seed. Generation runs in a worker thread.
Any OpenAI-compatible client works, e.g. kiln bigbench run --model openai:<url printed below>.

options:
  --model DIR          a kiln: model: a folder with model.safetensors and tokenizer.json (as
                       saveKilnLanguageModel writes), or a checkpoint file with tokenizer.json
                       beside it (a leading kiln: is accepted)
  --host H             address to listen on (default 127.0.0.1)
  --port N             port (default 8000; 0 picks a free one)
  --api-key K          require "Authorization: Bearer K" (default: no key)
  --model-name NAME    the model id clients send (default: the model folder's name)
  --max-batch N        decode rows per forward pass (default 16)
  --threads N          CPU threads for the model (default: all cores, or KILN_NUM_THREADS)
  --max-body-bytes N   larger request bodies get 413 (default 1048576)
  --quiet              no log line per request
  -h, --help           this help`;

export interface ServeIO {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Called once the server listens (an embedding program learns the port here). */
  onListening?: (server: KilnServer) => void;
}

const processIO: ServeIO = { out: (s) => console.log(s), err: (s) => console.error(s) };

/** Runs the server until `stop` aborts; returns the exit status. */
export async function runServe(argv: string[], stop: AbortSignal, io: ServeIO = processIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['help', 'quiet']);
  if (flags.help) {
    io.out(HELP);
    return 0;
  }
  if (positional.length) throw new UsageError(`serve: unexpected argument '${positional[0]}'`);
  checkFlags(flags, ['model', 'host', 'port', 'api-key', 'model-name', 'max-batch', 'threads', 'max-body-bytes', 'quiet'], 'serve');
  let model = flagString(flags, 'model');
  if (model === undefined) {
    io.out(HELP);
    return 2;
  }
  if (model.startsWith('kiln:')) model = model.slice('kiln:'.length);
  const server = await startServer({
    model,
    host: flagString(flags, 'host', '127.0.0.1'),
    port: flagInt(flags, 'port', 8000, 0, 65535),
    apiKey: flagString(flags, 'api-key'),
    modelName: flagString(flags, 'model-name'),
    maxBatch: flagInt(flags, 'max-batch', 16, 1, 4096),
    threads: flagInt(flags, 'threads', undefined, 1, 1024) ?? null,
    maxBodyBytes: flagInt(flags, 'max-body-bytes', 1 << 20, 1),
    log: flags.quiet ? undefined : (line) => io.err(`[serve] ${line}`),
  });
  const c = server.info.config;
  io.out(`kiln serve: '${server.modelName}' (GPT L${c.nLayer} H${c.nHead} d${c.nEmbd} ctx${server.info.blockSize}, ` +
    `${server.info.vocabSize} ${server.info.tokenizer} tokens, ${server.info.parameters} parameters) at ${server.baseUrl}`);
  io.onListening?.(server);
  if (!stop.aborted) await new Promise<void>((r) => stop.addEventListener('abort', () => r(), { once: true }));
  io.err('kiln serve: shutting down');
  await server.close();
  return 0;
}

export const command: Command = {
  name: 'serve',
  summary: 'an OpenAI-compatible completions endpoint over a kiln language model',
  async run(argv: string[]): Promise<number> {
    const ctl = new AbortController();
    const onSignal = () => ctl.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      return await runServe(argv, ctl.signal);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
