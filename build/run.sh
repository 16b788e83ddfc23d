#!/usr/bin/env bash
# The main job: caption images, transcribe speech and describe video clips with the small demo models shipped in
# assets/models/demo (trained by our own recipes, demo/; see assets/models/demo/MODEL_CARD.md), on the held-out samples in
# assets/demo. Prints, per task, each input beside the model's prediction (✓ when it equals the reference, else the
# reference) and the scores; the instruction-following vision model answers questions about the same images.
# Usage: build/run.sh [--json]   (--json: the evaluations' full JSON instead of the tables)
set -euo pipefail
cd "$(dirname "$0")/.."
format=(--table)
case "${1:-}" in
  --json) format=() ;;
  "") ;;
  *) echo "usage: build/run.sh [--json]" >&2; exit 2 ;;
esac
if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg) >/tmp/l3mm-apt.log 2>&1 || true
  fi
fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/Tools/MmTrain -c Release -v q -nologo > /dev/null
dotnet build demo/src/MmDemo -c Release -v q -nologo > /dev/null
mt() { dotnet src/Tools/MmTrain/bin/Release/net10.0/mm-train.dll "$@"; }
md() { dotnet demo/src/MmDemo/bin/Release/net10.0/mm-demo.dll "$@"; }
echo "== captions: assets/models/demo/vision on assets/demo/images =="
mt eval caption --model assets/models/demo/vision --data assets/demo/images/manifest.jsonl --examples -1 "${format[@]}"
echo
echo "== questions: assets/models/demo/vision-instruct on the same images (chat format) =="
dialogue_format=()
[ ${#format[@]} -eq 0 ] && dialogue_format=(--json)
md eval dialogue --model assets/models/demo/vision-instruct --data assets/demo/dialogues/manifest.jsonl --examples -1 "${dialogue_format[@]}"
echo
echo "== transcription: assets/models/demo/speech on assets/demo/speech (voices not seen in training) =="
mt eval asr --model assets/models/demo/speech --data assets/demo/speech/manifest.jsonl --examples -1 "${format[@]}"
echo
echo "== video: assets/models/demo/video on assets/demo/videos =="
mt eval video --model assets/models/demo/video --data assets/demo/videos/manifest.jsonl --examples -1 "${format[@]}"
