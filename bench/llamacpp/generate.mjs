// llama.cpp side of bench/compare-llamacpp.sh: load a GGUF cold in this process, evaluate a prompt, generate N tokens
// greedily (end-of-text ignored, so every run decodes the same count), and print one JSON line with the timings.
//   node generate.mjs --model FILE.gguf --prompt TEXT [--tokens N] [--threads T] [--top K]
// With --top K it prints instead the K most likely next tokens after the prompt with their probabilities (untimed;
// compare-logits.mjs checks them against our logits).
// init_s: node-llama-cpp's own start (finding, testing and loading the native binding), which a llama.cpp program does
// not have; load_s: model + context; first_token_s: from the start of loading the model to the first generated token
// (load + prompt evaluation + sampling), as a node-llama-cpp user waits; llama_cpp_load_time_s: llama.cpp's own timer
// from the start of its model load to the end of the prompt's evaluation, i.e. without node-llama-cpp's JS-side work;
// decode_tokens_per_s: tokens 2..N over the time after the first one; peak_rss_mb: the process's maximum resident set.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

function opt(name, fallback) {
    const i = process.argv.indexOf(name);
    if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
    if (fallback === undefined) { console.error(`missing ${name}`); process.exit(2); }
    return fallback;
}

const modelPath = opt("--model");
const prompt = opt("--prompt");
const nTokens = Number(opt("--tokens", "32"));
const threads = Number(opt("--threads", "2"));

const tInit = performance.now();
// llama.cpp's log is kept (info and up) to read its own model load time from printTimings(); errors go to stderr.
const logLines = [];
const logger = (level, message) => {
    logLines.push(message);
    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) console.error(message);
};
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.info, logger, maxThreads: threads });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const tModel = performance.now();
const top = Number(opt("--top", "0"));
// Timed runs keep llama.cpp's default K/V cache type (F16); the --top check stores K/V in F32 so that the comparison
// with our f32 logits is not blurred by the cache's rounding.
const kv = top > 0 ? { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" } : {};
const context = await model.createContext({ contextSize: 512, batchSize: 512, threads, sequences: 1, performanceTracking: true, ...kv });
const tContext = performance.now();
const sequence = context.getSequence();
const loadS = (performance.now() - t0) / 1000;

// <|begin_of_text|> first, as `mm generate` does (tokenizer.ggml.add_bos_token); tokenize() itself adds nothing.
const promptTokens = [model.tokens.bos, ...model.tokenize(prompt, false)];
if (top > 0) {
    // Temperature 1 with every filter off: the probabilities are the softmax of the raw logits.
    const it = sequence.evaluateWithMetadata(promptTokens, { probabilities: true }, { temperature: 1, topK: 0, topP: 1, minP: 0 });
    const first = (await it.next()).value;
    await it.return();
    const best = [...first.probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
    console.log(JSON.stringify({ prompt_ids: promptTokens, top: best }));
    process.exit(0);
}
const generated = [];
let tFirst = 0;
const tPrompt = performance.now();
for await (const token of sequence.evaluate(promptTokens, { temperature: 0 })) {
    generated.push(token);
    if (generated.length === 1) tFirst = performance.now();
    if (generated.length >= nTokens) break;
}
const tEnd = performance.now();
const usage = process.resourceUsage();
// llama.cpp's own "load time" (its perf counters): from the start of its model load to the end of the first
// evaluation, i.e. native model load + context + prompt, without node-llama-cpp's JS-side GGUF parsing and memory
// planning that precede the native load inside loadModel().
await context.printTimings();
const m = logLines.join("\n").match(/load time\s*=\s*([0-9.]+) ms/);
const nativeLoadS = m ? Number(m[1]) / 1000 : null;
const out = {
    runtime: "llama.cpp (node-llama-cpp)",
    threads,
    init_s: +((t0 - tInit) / 1000).toFixed(3),
    load_s: +loadS.toFixed(3),
    model_load_s: +((tModel - t0) / 1000).toFixed(3),
    context_s: +((tContext - tModel) / 1000).toFixed(3),
    // What a llama.cpp program waits for before its first token (sampling one token adds well under a millisecond).
    llama_cpp_load_time_s: nativeLoadS,
    prompt_tokens: promptTokens.length,
    generated_tokens: generated.length,
    prefill_s: +((tFirst - tPrompt) / 1000).toFixed(4),
    first_token_s: +((tFirst - t0) / 1000).toFixed(3),
    decode_s: +((tEnd - tFirst) / 1000).toFixed(4),
    decode_tokens_per_s: +((generated.length - 1) / ((tEnd - tFirst) / 1000)).toFixed(2),
    peak_rss_mb: +(usage.maxRSS / 1024).toFixed(1),
    prompt_ids: promptTokens,
    ids: generated,
    text: model.detokenize(generated),
};
console.log(JSON.stringify(out));
await context.dispose();
await model.dispose();
await llama.dispose();
