#!/usr/bin/env bash
# Side-by-side decode comparison with llama.cpp on one random Llama 3 model, in one run on this machine:
#   1. builds `mm`, the GGUF exporter and the bandwidth probe; installs node-llama-cpp (bench/llamacpp) when missing;
#   2. writes the model once (`mm init --seed 1`: f32 folder, bf16 folder, `mm quantize` q8 folder when available) and
#      exports it as GGUF F32, F16 and Q8_0, each re-read and checked against its source;
#   3. measures the memory read bandwidth;
#   4. checks both runtimes run the same model (next-token probabilities after the prompt, f32);
#   5. for f32 / bf16-vs-F16 / q8-vs-Q8_0 alternates `mm generate --stats` and llama.cpp (node-llama-cpp), each a cold
#      process with the same prompt, token count and threads, REPS times;
#   6. prints markdown tables (best of REPS and first run) to stdout and writes them to --out.
# Usage: bench/compare-llamacpp.sh [--config llama3.2-1b] [--tokens 64] [--threads 2] [--reps 2]
#          [--prompt TEXT] [--precisions "f32 bf16 q8"] [--work DIR] [--out FILE] [--loaded] [--clean]
#          [--drop-caches]   (root: empty the page cache before every process, so loads read from disk)
{ # the whole script is one block, read completely before it runs
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

invocation="bench/compare-llamacpp.sh$(printf ' %q' "$@")"
config=llama3.2-1b; tokens=64; threads=2; reps=2; prompt="The quick brown fox jumps over"; precisions="f32 bf16 q8"
work=""; out=""; loaded=0; clean=0; seed=1; drop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2;;
    --tokens) tokens=$2; shift 2;;
    --threads) threads=$2; shift 2;;
    --reps) reps=$2; shift 2;;
    --prompt) prompt=$2; shift 2;;
    --precisions) precisions=$2; shift 2;;
    --work) work=$2; shift 2;;
    --out) out=$2; shift 2;;
    --loaded) loaded=1; shift;;
    --clean) clean=1; shift;;
    --drop-caches) drop=1; shift;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2;;
  esac
done
work=${work:-$root/out/compare-llamacpp}
d=$work/$config
out=${out:-$d/compare-llamacpp.md}
mkdir -p "$d" "$(dirname "$out")"
results=$d/results.jsonl
: > "$results"
log() { echo "[compare-llamacpp] $*" >&2; }

# Both runtimes get the same cores: pin to the first $threads CPUs when the machine has more.
pin=()
if [ "$(nproc)" -gt "$threads" ] && command -v taskset >/dev/null 2>&1; then pin=(taskset -c "0-$((threads - 1))"); fi
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

log "building mm, the GGUF exporter and the bandwidth probe (Release)"
for p in src/Tools/Mm bench/Llama3.Multimodal.Bench.Gguf bench/Llama3.Multimodal.Bench.Text; do
  dotnet build "$p" -c Release -v q -nologo >"$d/build.log" 2>&1 || { cat "$d/build.log" >&2; exit 1; }
done
mm() { dotnet "$root/src/Tools/Mm/bin/Release/net10.0/mm.dll" "$@"; }
gguf() { dotnet "$root/bench/Llama3.Multimodal.Bench.Gguf/bin/Release/net10.0/Llama3.Multimodal.Bench.Gguf.dll" "$@"; }

if [ ! -d bench/llamacpp/node_modules/node-llama-cpp ]; then
  log "installing node-llama-cpp (npm ci in bench/llamacpp)"
  (cd bench/llamacpp && npm ci --omit=optional --no-audit --no-fund >&2)
fi
nlc_version=$(node -p 'require("./bench/llamacpp/node_modules/node-llama-cpp/package.json").version')

# The model: one seed, written once and reused by later runs with the same --work; only what the chosen precisions need.
want() { case " $precisions " in *" $1 "*) return 0;; *) return 1;; esac; }
[ -f "$d/f32/config.json" ] || { log "mm init $config f32"; mm init --config "$config" --seed $seed --out "$d/f32" >&2; }
if want bf16 && [ ! -f "$d/bf16/config.json" ]; then log "mm init $config bf16"; mm init --config "$config" --seed $seed --dtype bf16 --out "$d/bf16" >&2; fi
q8mode=none; q8reason=""
if ! want q8; then :
elif mm --help 2>/dev/null | grep -qE '^ +quantize( |$)'; then
  # A q8 folder written by an older build interleaves weights and scales, so it loads by reading instead of mapping:
  # write it again (the marker file says it was written by a build that puts the scales after the weights).
  if [ -f "$d/q8/config.json" ] && [ ! -f "$d/q8/.scales-after-weights" ]; then log "rewriting the q8 folder (older layout)"; rm -rf "$d/q8"; fi
  if [ -f "$d/q8/config.json" ] || { log "mm quantize → q8 folder"; mm quantize --model "$d/f32" --to q8 --out "$d/q8" >&2 && touch "$d/q8/.scales-after-weights"; }; then q8mode=folder
  else q8reason="mm quantize failed"; fi
fi
if want q8 && [ $q8mode = none ] && mm generate --help 2>/dev/null | grep -q -- '--quantize'; then q8mode=load; fi
[ $q8mode = none ] && [ -z "$q8reason" ] && q8reason="this build has neither mm quantize nor generate --quantize"
types=""; want f32 && types="$types f32"; want bf16 && types="$types f16"; want q8 && types="$types q8_0"
for t in $types; do
  if [ ! -f "$d/$t.gguf" ]; then
    log "exporting $t.gguf (with re-read check)"
    gguf export --model "$d/f32" --type $t --out "$d/$t.gguf" --check >&2
  fi
  echo "{\"kind\":\"gguf\",\"precision\":\"$t\",$(gguf info --gguf "$d/$t.gguf" | sed 's/^{//')" >> "$results"
done

load1=$(cut -d' ' -f1 /proc/loadavg)
awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }' && loaded=1
machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(. /etc/os-release && echo "$PRETTY_NAME"), .NET $(dotnet --version), node $(node --version); load average at start $load1"
cmd="$invocation"
node -e 'console.log(JSON.stringify({kind:"setup",config:process.argv[1],tokens:+process.argv[2],threads:+process.argv[3],reps:+process.argv[4],prompt:process.argv[5],machine:process.argv[6],command:process.argv[7],loaded:process.argv[8]==="1",node_llama_cpp:process.argv[9],page_cache:process.argv[10]==="1"?"emptied before every process":"warm (the files of each precision read just before its runs)",when:new Date().toISOString().slice(0,16).replace("T"," ")+" UTC"}))' \
  "$config" "$tokens" "$threads" "$reps" "$prompt" "$machine" "$cmd" "$loaded" "$nlc_version" "$drop" >> "$results"

log "memory read bandwidth"
bwline=$("${pin[@]}" dotnet bench/Llama3.Multimodal.Bench.Text/bin/Release/net10.0/Llama3.Multimodal.Bench.Text.dll bandwidth | grep 'memory read bandwidth')
log "$bwline"
echo "{\"kind\":\"bandwidth\",\"gbps\":$(sed -E 's/.*: ([0-9.]+) GB\/s.*/\1/' <<<"$bwline")}" >> "$results"

if want f32; then
log "same-model check (f32): next-token probabilities after the prompt"
node bench/llamacpp/generate.mjs --model "$d/f32.gguf" --prompt "$prompt" --threads "$threads" --top 20 > "$d/llamacpp-top.json"
ids=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).prompt_ids.join(",")' "$d/llamacpp-top.json")
mm logits --model "$d/f32" --ids "$ids" --positions last --out "$d/ours-logits.json" >&2
ours_ids=$(mm tokenize --text "$prompt" --bos | tr -d ' \n')
same_ids=false; [ "[$ids]" = "$ours_ids" ] && same_ids=true
echo "{\"kind\":\"agree\",\"precision\":\"f32\",\"same_prompt_ids\":$same_ids,$(node bench/llamacpp/compare-logits.mjs "$d/ours-logits.json" "$d/llamacpp-top.json" | sed 's/^{//')" >> "$results"
tail -1 "$results" >&2
fi

now() { date +%s.%N; }
cold_cache() {
  if [ $drop = 1 ]; then sync; echo 3 > /proc/sys/vm/drop_caches || { echo "--drop-caches needs root" >&2; exit 1; }; fi
}
run_ours() { # precision rep
  local p=$1 rep=$2 args=()
  case $p in
    f32) args=(--model "$d/f32");;
    bf16) args=(--model "$d/bf16" --dtype bf16);;
    q8) if [ $q8mode = folder ]; then args=(--model "$d/q8"); else args=(--model "$d/f32" --quantize q8); fi;;
  esac
  local t0 t1 stats
  cold_cache
  t0=$(now)
  stats=$("${pin[@]}" dotnet "$root/src/Tools/Mm/bin/Release/net10.0/mm.dll" generate "${args[@]}" --prompt "$prompt" --max-new-tokens "$tokens" --temperature 0 --stats 2>&1 >/dev/null | grep '^{' | tail -1)
  t1=$(now)
  echo "{\"kind\":\"run\",\"precision\":\"$p\",\"side\":\"ours\",\"rep\":$rep,\"wall_s\":$(echo "$t1 - $t0" | bc),\"stats\":$stats}" >> "$results"
  log "ours $p #$rep: $stats"
}
run_llama() { # precision rep
  local p=$1 rep=$2 file t0 t1 stats
  case $p in f32) file=f32.gguf;; bf16) file=f16.gguf;; q8) file=q8_0.gguf;; esac
  cold_cache
  t0=$(now)
  stats=$("${pin[@]}" node bench/llamacpp/generate.mjs --model "$d/$file" --prompt "$prompt" --tokens "$tokens" --threads "$threads" | grep '^{' | tail -1)
  t1=$(now)
  echo "{\"kind\":\"run\",\"precision\":\"$p\",\"side\":\"llama.cpp\",\"rep\":$rep,\"wall_s\":$(echo "$t1 - $t0" | bc),\"stats\":$stats}" >> "$results"
  log "llama.cpp $p #$rep: $(cut -c1-240 <<<"$stats")"
}

# Without --drop-caches both runtimes start from a warm page cache: each precision's files (ours and the GGUF) are read
# just before its runs, so neither side's first process pays for reading a file an earlier precision pushed out of memory.
warm_files() { # precision
  [ $drop = 1 ] && return 0
  local files=()
  case $1 in
    f32) files=("$d"/f32/*.safetensors "$d/f32.gguf");;
    bf16) files=("$d"/bf16/*.safetensors "$d/f16.gguf");;
    q8) if [ $q8mode = folder ]; then files=("$d"/q8/*.safetensors); else files=("$d"/f32/*.safetensors); fi; files+=("$d/q8_0.gguf");;
  esac
  cat "${files[@]}" > /dev/null
}

for p in $precisions; do
  warm_files "$p"
  for rep in $(seq 1 "$reps"); do
    if [ "$p" = q8 ] && [ $q8mode = none ]; then
      [ "$rep" = 1 ] && echo "{\"kind\":\"skip\",\"precision\":\"q8\",\"reason\":\"$q8reason\"}" >> "$results"
    else
      run_ours "$p" "$rep"
    fi
    run_llama "$p" "$rep"
  done
done

node bench/llamacpp/report.mjs "$results" | tee "$out"
log "table written to $out (raw results: $results)"
if [ $clean = 1 ]; then rm -rf "$d/f32" "$d/bf16" "$d/q8" "$d"/*.gguf "$d/ours-logits.json"; fi
exit 0
}
