// Same-model check for bench/compare-llamacpp.sh: compares llama.cpp's next-token probabilities (generate.mjs --top K)
// with our logits for the same prompt ids (`mm logits --positions last --out FILE`).
//   node compare-logits.mjs OURS_LOGITS.json LLAMACPP_TOP.json
// Prints {top1_agree, max_abs_dlogp, max_rel_dp} over the K tokens llama.cpp ranks highest.
import { readFileSync } from "node:fs";

const ours = JSON.parse(readFileSync(process.argv[2], "utf8")).logits;
const theirs = JSON.parse(readFileSync(process.argv[3], "utf8"));
const row = ours[ours.length - 1];
let max = -Infinity, arg = -1;
for (let i = 0; i < row.length; i++) if (row[i] > max) { max = row[i]; arg = i; }
let sum = 0;
for (const v of row) sum += Math.exp(v - max);
const logZ = max + Math.log(sum);
let maxD = 0, maxRel = 0;
for (const [id, p] of theirs.top) {
    const lp = row[id] - logZ;
    maxD = Math.max(maxD, Math.abs(lp - Math.log(p)));
    maxRel = Math.max(maxRel, Math.abs(Math.exp(lp) - p) / p);
}
console.log(JSON.stringify({ top1_ours: arg, top1_llamacpp: theirs.top[0][0], top1_agree: arg === theirs.top[0][0], tokens_compared: theirs.top.length, max_abs_dlogp: +maxD.toExponential(3), max_rel_dp: +maxRel.toExponential(3) }));
