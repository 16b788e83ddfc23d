// Turns the JSON lines bench/compare-llamacpp.sh collects into markdown tables.
//   node report.mjs RESULTS.jsonl
// Lines: {kind:"setup",...}, {kind:"bandwidth",gbps}, {kind:"gguf",precision,weight_bytes_per_token,file_bytes},
// {kind:"agree",...}, {kind:"skip",precision,reason}, {kind:"run",precision,side:"ours"|"llama.cpp",rep,wall_s,stats}.
import { readFileSync } from "node:fs";

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter(l => l.trim()).map(l => JSON.parse(l));
const setup = lines.find(l => l.kind === "setup") ?? {};
const bw = lines.find(l => l.kind === "bandwidth")?.gbps;
const runs = lines.filter(l => l.kind === "run");
const precisions = [...new Set(lines.filter(l => l.kind === "run" || l.kind === "skip").map(l => l.precision))];
const label = { f32: "f32 vs F32", bf16: "bf16 vs F16", q8: "q8 vs Q8_0" };
const ggufOf = { f32: "f32", bf16: "f16", q8: "q8_0" };
const f = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x)) ? "–" : x.toFixed(d);
let estimated = false;

function firstToken(r) {
    if (r.side === "ours" && r.stats.first_token_s === undefined) { estimated = true; return r.stats.load_s + r.stats.prefill_s; }
    // llama.cpp's perf "load time" runs from the start of its model load to the end of the first evaluation (the prompt).
    const own = r.stats.llama_cpp_load_time_s ?? r.stats.native_model_load_s;
    if (r.side === "llama.cpp" && own != null) return own;
    return r.stats.first_token_s;
}

function pick(prec, side, mode) {
    const rs = runs.filter(r => r.precision === prec && r.side === side);
    if (rs.length === 0) return null;
    if (mode === "first") {
        const r = rs.reduce((a, b) => (a.rep <= b.rep ? a : b));
        return { tps: r.stats.decode_tokens_per_s, ftt: firstToken(r), rss: r.stats.peak_rss_mb, load: r.stats.load_s, wall: r.wall_s };
    }
    return {
        tps: Math.max(...rs.map(r => r.stats.decode_tokens_per_s)),
        ftt: Math.min(...rs.map(firstToken)),
        rss: Math.min(...rs.map(r => r.stats.peak_rss_mb)),
        load: Math.min(...rs.map(r => r.stats.load_s)),
        wall: Math.min(...rs.map(r => r.wall_s)),
    };
}

function table(mode) {
    const out = [];
    out.push("| precision | decode tok/s, ours | llama.cpp | ours / llama.cpp | first token s, ours | llama.cpp | ours / llama.cpp | peak RSS MB, ours | llama.cpp | read-bandwidth fraction, ours | llama.cpp |");
    out.push("|---|---|---|---|---|---|---|---|---|---|---|");
    for (const p of precisions) {
        const skip = lines.find(l => l.kind === "skip" && l.precision === p);
        const o = pick(p, "ours", mode), l = pick(p, "llama.cpp", mode);
        const bytes = lines.find(x => x.kind === "gguf" && x.precision === ggufOf[p])?.weight_bytes_per_token;
        const frac = s => (s && bw && bytes) ? (bytes * s.tps / 1e9 / bw) : undefined;
        if (skip && !o) {
            out.push(`| ${label[p]} | not available (${skip.reason}) | ${f(l?.tps)} | – | – | ${f(l?.ftt)} | – | – | ${f(l?.rss, 0)} | – | ${f(frac(l))} |`);
            continue;
        }
        out.push(`| ${label[p]} | ${f(o?.tps)} | ${f(l?.tps)} | **${f(o && l ? o.tps / l.tps : undefined)}×** | ${f(o?.ftt)} | ${f(l?.ftt)} | ${f(o && l ? o.ftt / l.ftt : undefined)}× | ${f(o?.rss, 0)} | ${f(l?.rss, 0)} | ${f(frac(o))} | ${f(frac(l))} |`);
    }
    return out.join("\n");
}

const md = [];
md.push(`### Side by side with llama.cpp: ${setup.config ?? "?"}${setup.loaded ? " (loaded)" : ""}`);
md.push("");
md.push(`Machine: ${setup.machine ?? "?"}. ${setup.when ?? ""}`);
md.push(`Command: \`${setup.command ?? "bench/compare-llamacpp.sh"}\``);
md.push(`Prompt "${setup.prompt}" (${runs[0]?.stats.prompt_tokens ?? "?"} tokens with <|begin_of_text|>), ${setup.tokens} generated tokens, greedy, ${setup.threads} threads each, ` +
    `${setup.reps} alternated cold processes per runtime and precision; page cache ${setup.page_cache ?? "warm"}. llama.cpp: node-llama-cpp ${setup.node_llama_cpp ?? "?"}. ` +
    `Memory read bandwidth (bench/Llama3.Multimodal.Bench.Text bandwidth, same run): ${f(bw, 1)} GB/s.`);
md.push("");
md.push(`Best of ${setup.reps} (highest decode tok/s, lowest first-token time, lowest peak RSS):`);
md.push("");
md.push(table("best"));
md.push("");
md.push("First process of each (cold):");
md.push("");
md.push(table("first"));
md.push("");
const notes = [];
notes.push("decode tok/s: generated tokens after the first, over the time after the first; first token: from the start of loading the model (process and runtime already started) to the first generated token; ratios > 1 in decode and < 1 in first token favour ours.");
notes.push("llama.cpp's first token is llama.cpp's own timer (its perf \"load time\": from the start of its model load to the end of the prompt's evaluation); node-llama-cpp's start (finding, testing and loading its binding) and its JS-side GGUF parsing and memory planning inside loadModel() are left out (the \"via node-llama-cpp\" column below has them). Process wall is the whole process as launched, runtime start-up included, for both.");
notes.push("read-bandwidth fraction: weight bytes a decoded token reads (from the GGUF of that precision: every 2-D weight, the tied output head included) × tok/s ÷ the measured read bandwidth.");
if (estimated) notes.push("ours' first token = load_s + prefill_s from `--stats` (this build has no first_token_s).");
const agree = lines.filter(l => l.kind === "agree");
for (const a of agree)
    notes.push(`same model check (${a.precision}): ${a.same_prompt_ids === undefined ? "" : a.same_prompt_ids ? "both tokenize the prompt to the same ids; " : "the two tokenizations of the prompt DIFFER; "}llama.cpp's top-${a.tokens_compared} next-token probabilities after the prompt vs ours (\`mm logits\`, f32): top-1 ${a.top1_agree ? "agrees" : "DIFFERS"}, max |Δ log p| ${a.max_abs_dlogp}.`);
for (const s of lines.filter(l => l.kind === "skip")) notes.push(`${label[s.precision]}: ours skipped — ${s.reason}.`);
md.push(notes.map(n => "- " + n).join("\n"));
md.push("");
md.push("Every run:");
md.push("");
md.push("| precision | runtime | run | binding start s | load s | prefill s | first token s | via node-llama-cpp s | decode tok/s | generated | peak RSS MB | process wall s |");
md.push("|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of runs) {
    const st = r.stats, ll = r.side === "llama.cpp";
    md.push(`| ${r.precision} | ${r.side} | ${r.rep} | ${ll ? f(st.init_s) : "–"} | ${f(st.load_s)} | ${f(st.prefill_s, 3)} | ${f(firstToken(r))} | ${ll ? f(st.first_token_s) : "–"} | ${f(st.decode_tokens_per_s)} | ${st.generated_tokens} | ${f(st.peak_rss_mb, 0)} | ${f(r.wall_s)} |`);
}
console.log(md.join("\n"));
