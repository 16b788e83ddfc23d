#!/usr/bin/env bash
# Runs every test of the solution on a fresh machine: installs the system tools some tests need (ffmpeg, espeak-ng,
# sox, Open MPI) when missing, restores, builds (the TorchSharp native fix runs inside the build), tests, and ends with the line
# "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin libopenmpi-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${need[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/tmp/l3mm-apt.log 2>&1 \
      || echo "warning: could not install ${need[*]} (see /tmp/l3mm-apt.log); tests that need them will fail with a clear message"
  else
    echo "warning: missing ${need[*]}; install them (apt-get install ${need[*]}) for the media tests"
  fi
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
log=$(mktemp)
dotnet test Llama3.Multimodal.sln -c Release "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

passed=0; failed=0; skipped=0
while IFS= read -r line; do
  p=$(sed -nE 's/.*Passed: *([0-9]+).*/\1/p' <<<"$line"); f=$(sed -nE 's/.*Failed: *([0-9]+).*/\1/p' <<<"$line"); s=$(sed -nE 's/.*Skipped: *([0-9]+).*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
done < <(grep -E '^(Passed|Failed)! +- ' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The build or a test host failed without reporting a failed test: count it so the summary cannot read green.
  failed=1
  echo "error: dotnet test exited with code $rc"
fi
rm -f "$log"
echo "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
