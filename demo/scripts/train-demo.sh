#!/usr/bin/env bash
# Reproducible demo pipeline on this CPU: synthetic data → text-pretrain → vision-stage1 → vision-stage2 → video,
# and speech-stage1 (BEST-RQ); sft (chat format + "Repeat after me" dialogs on the pretrained decoder) → speech-stage2
# (encoder + adapter under that frozen decoder, as the speech adapter joins a post-trained model); then held-out
# evaluation of each final model.
#
#   scripts/train-demo.sh [ROOT]         (default ROOT = runs/demo)
#
# Environment: SEED (1234), SCALE (1.0: multiplies every stage's step count), COUNT_IMAGES/COUNT_SPEECH/COUNT_VIDEO/
# COUNT_TEXT (training items), EVAL_COUNT (items per evaluation set), THREADS (libtorch threads, default 2),
# TOKENIZER (bytes, or bpe: a BPE_VOCAB-rank vocabulary trained by `mm-train make-data bpe` on the demo texts),
# RETRIES (2: a stage that fails resumes from its last checkpoint this many times).
# Configs: configs/demo/<recipe>.json (paths relative to ROOT, where they are copied). Every stage resumes if rerun.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="$(mkdir -p "${1:-runs/demo}" && cd "${1:-runs/demo}" && pwd)"
SEED="${SEED:-1234}"; SCALE="${SCALE:-1.0}"; THREADS="${THREADS:-2}"
EVAL_COUNT="${EVAL_COUNT:-32}"
dotnet build "$here/src/Tools/MmTrain" -c Release -v q -nologo >/dev/null
MT=(dotnet "$here/src/Tools/MmTrain/bin/Release/net10.0/mm-train.dll")
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$ROOT/pipeline.log"; }
start=$(date +%s)

if [ ! -f "$ROOT/.data-done" ]; then
  log "make-data (seed $SEED)"
  "${MT[@]}" make-data text --out "$ROOT" --seed "$SEED" --documents "${COUNT_TEXT:-3000}" >/dev/null
  "${MT[@]}" make-data images --out "$ROOT" --seed "$SEED" --count "${COUNT_IMAGES:-2000}" --eval-count "$EVAL_COUNT" >/dev/null
  "${MT[@]}" make-data speech --out "$ROOT" --seed "$SEED" --count "${COUNT_SPEECH:-6000}" --eval-count "$EVAL_COUNT" >/dev/null
  "${MT[@]}" make-data video --out "$ROOT" --seed "$SEED" --count "${COUNT_VIDEO:-300}" --eval-count "$EVAL_COUNT" >/dev/null
  # The decoder is frozen in every multimodal stage, so its pretraining corpus also holds the captions and transcripts
  # of the training sets (never the evaluation sets): the language the adapters must make it speak. The SFT dialogs
  # teach the chat format and to repeat the user's words after the ASR system prompt, which is what the frozen decoder
  # must do with the speech adapter's frames in speech-stage2.
  python3 - "$ROOT" <<'PY'
import json, sys, os
root = sys.argv[1]
sets = (("images/manifest.jsonl", "caption"), ("videos/manifest.jsonl", "caption"), ("speech/manifest.jsonl", "text"))
def texts(rel, key, cap=4000):   # at most `cap` lines of a set (the grammar is small; a large set would crowd out the rest)
    return [json.loads(line)[key] for line in open(os.path.join(root, rel), encoding="utf-8")][:cap]
with open(os.path.join(root, "text.jsonl"), "a", encoding="utf-8") as out:
    for rel, key in sets:
        for t in texts(rel, key):
            out.write(json.dumps({"text": t}) + "\n")
def repeat(t):
    return json.dumps({"messages": [{"role": "system", "content": "Repeat after me in English:"},
                                    {"role": "user", "content": t}, {"role": "assistant", "content": t}]}) + "\n"
with open(os.path.join(root, "chat.jsonl"), "a", encoding="utf-8") as out:
    for t in texts("speech/manifest.jsonl", "text") * 2 + texts("images/manifest.jsonl", "caption") + texts("videos/manifest.jsonl", "caption"):
        out.write(repeat(t))
PY
  touch "$ROOT/.data-done"
fi
cp "$here"/configs/demo/*.json "$ROOT/"
TOK_SET=()
if [ "${TOKENIZER:-bytes}" = bpe ]; then   # a small BPE vocabulary of our own over every text the demo uses
  [ -f "$ROOT/tokenizer.model" ] || "${MT[@]}" make-data bpe --out "$ROOT/tokenizer.model" --vocab-size "${BPE_VOCAB:-1024}" \
    "$ROOT/text.jsonl" "$ROOT/images/manifest.jsonl" "$ROOT/speech/manifest.jsonl" "$ROOT/videos/manifest.jsonl" >/dev/null
  TOK_SET=(--set 'tokenizer="tokenizer.model"')
fi

stage() {   # stage RECIPE: train with configs/demo/RECIPE.json, then copy the last checkpoint to runs/RECIPE/final
  local r="$1"; shift
  local total warm
  total=$(python3 -c "import json; c=json.load(open('$ROOT/$r.json')); print(max(1,int(c['optim']['total_steps']*$SCALE)))")
  warm=$(python3 -c "import json; c=json.load(open('$ROOT/$r.json')); print(min($total,int(c['optim']['warmup_steps'])))")
  log "$r: $total steps"
  local t0; t0=$(date +%s)
  local try=1
  # A failed attempt resumes exactly from its last checkpoint (up to RETRIES times).
  until "${MT[@]}" "$r" --config "$ROOT/$r.json" --out "$ROOT/runs/$r" --resume --threads "$THREADS" --set "optim.total_steps=$total" --set "optim.warmup_steps=$warm" "${TOK_SET[@]}" "$@" \
      >> "$ROOT/runs-$r.log" 2>&1; do
    tail -5 "$ROOT/runs-$r.log"
    [ "$try" -le "${RETRIES:-2}" ] || exit 1
    log "$r: attempt $try failed; resuming"; try=$((try + 1))
  done
  local last; last=$(ls -d "$ROOT/runs/$r/checkpoints/step-"* | sort | tail -1)
  rm -rf "$ROOT/runs/$r/final"; cp -r "$last" "$ROOT/runs/$r/final"
  log "$r: done in $(( $(date +%s) - t0 )) s; $(tail -1 "$ROOT/runs/$r/metrics.jsonl")"
}

stage text-pretrain
stage vision-stage1
stage vision-stage2
stage video
stage speech-stage1
stage sft
stage speech-stage2

log "evaluation"
"${MT[@]}" eval caption --model "$ROOT/runs/vision-stage2/final" --data "$ROOT/images-eval/manifest.jsonl" > "$ROOT/eval-caption.json"
"${MT[@]}" eval caption --model "$ROOT/runs/vision-stage2/final" --data "$ROOT/images-heldout/manifest.jsonl" > "$ROOT/eval-caption-heldout.json"
"${MT[@]}" eval asr --model "$ROOT/runs/speech-stage2/final" --data "$ROOT/speech-heldout/manifest.jsonl" > "$ROOT/eval-asr-heldout.json"
"${MT[@]}" eval video --model "$ROOT/runs/video/final" --data "$ROOT/videos-eval/manifest.jsonl" > "$ROOT/eval-video.json"
for f in "$ROOT"/eval-*.json; do log "$(basename "$f"): $(python3 -c "import json; d=json.load(open('$f')); print({k: v for k, v in d.items() if k in ('exact_match','wer','accuracy','reversed_rate','count')})")"; done
log "pipeline wall time: $(( $(date +%s) - start )) s"
