#!/usr/bin/env bash
# Crash-safe training: `fsdiff train` on a tiny config (as train.sh) is killed with SIGKILL at several
# points - before its first checkpoint, right after a checkpoint, mid-run, and DURING a checkpoint
# write and a model write (the kill is fired the moment the writer's temp file appears) - and then
# continued. After every kill the checkpoint on disk (if any) is a valid file (`fsdiff info` opens it,
# `--resume` accepts it), and the continued run ends with checkpoint, model and best-model files
# byte-identical to those of an uninterrupted run, with no temp file left in the run folder.
# (train.csv rows logged after the last checkpoint are dropped on resume by design.)
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="${FSDIFF_DATA:-../shared/data}"
T=$(mktemp -d /tmp/fsd_cli_train_crash_XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"

# mini data root: med/train 4 pairs, med/val 2 pairs (links, nothing copied)
source "$(dirname "$0")/mini_data.bash"
mini_data "$T/data" 4 2

A=(--data "$T/data" --teacher "$T/teacher" --preset tiny --crops 32 --scales 2,4 --steps 16 --warmup 4
   --ckpt-every 4 --log-every 2 --val-every 8 --val-pairs 2 --val-steps 3 --val-crop 64 --seed 5 --quiet)
FILES=(checkpoint.safetensors model.safetensors best.safetensors)

# the uninterrupted reference (it also makes the teacher targets every later run reuses)
t0=$(date +%s.%N)
"$B" train "${A[@]}" --out "$T/ref" 2>"$T/ref.err"; rc=$?
t1=$(date +%s.%N)
check "uninterrupted run: exit 0, checkpoint, model and best written" \
  '[[ $rc -eq 0 && -s "$T/ref/checkpoint.safetensors" && -s "$T/ref/model.safetensors" && -s "$T/ref/best.safetensors" ]]'
echo "      (reference run: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}') s)"

temps() { ls -A "$1" 2>/dev/null | grep -c '\.tmp' ; }

# after a kill: every checkpoint/model file present is valid; then continue (resume, or a fresh start
# when no checkpoint exists yet) and compare with the reference
continue_and_compare() { # name, run dir
  local name="$1" R="$2" f ok=1 infos=""
  for f in "${FILES[@]}"; do
    if [[ -e "$R/$f" ]]; then
      "$B" info --no-tensors "$R/$f" >/dev/null 2>"$T/info.err" || { ok=0; infos+="$f: $(cat "$T/info.err") "; }
      infos+="$f "
    fi
  done
  check "$name: files on disk after SIGKILL are valid (${infos:-none yet}; $(temps "$R") temp files left by the kill)" '[[ $ok -eq 1 ]]'
  if [[ -e "$R/checkpoint.safetensors" ]]; then
    "$B" train --resume --out "$R" --quiet 2>"$T/resume.err"; rc=$?
    check "$name: --resume: exit 0 ($(head -c 300 "$T/resume.err"))" '[[ $rc -eq 0 ]]'
  else
    err=$("$B" train --resume --out "$R" --quiet 2>&1); rc=$?
    check "$name: no checkpoint yet: --resume refuses with one line ($err)" '[[ $rc -ne 0 && $rc -lt 128 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"does not exist"* ]]'
    "$B" train "${A[@]}" --out "$R" 2>"$T/resume.err"; rc=$?
    check "$name: a fresh start in the same folder: exit 0 ($(head -c 300 "$T/resume.err"))" '[[ $rc -eq 0 ]]'
  fi
  for f in "${FILES[@]}"; do
    check "$name: $f byte-identical to the uninterrupted run" 'cmp -s "$T/ref/$f" "$R/$f"'
  done
  check "$name: no temp files left after the continued run ($(ls -A "$R" | tr '\n' ' '))" '[[ $(temps "$R") -eq 0 ]]'
}

# start a run in the background; $pid
start() { "$B" train "${A[@]}" --out "$1" 2>>"$T/bg.err" & pid=$!; pids+=("$pid"); }
# wait until `test` holds (polled fast), then SIGKILL; $killed = 1 if the process was still alive
kill_when() { # run dir, bash test, timeout seconds
  local end=$(( SECONDS + $3 ))
  while kill -0 "$pid" 2>/dev/null && ! eval "$2"; do
    (( SECONDS > end )) && break
  done
  if kill -9 "$pid" 2>/dev/null; then killed=1; else killed=0; fi
  wait "$pid" 2>/dev/null
}

# 1. early: before the first checkpoint (the process has just started)
R="$T/early"; start "$R"; sleep 0.2; kill_when "$R" 'true' 0
check "early kill: the process was running when killed" '[[ $killed -eq 1 ]]'
continue_and_compare "early kill" "$R"

# 2. right after the first checkpoint was renamed into place (while the model is being written)
R="$T/after_ckpt"; start "$R"; kill_when "$R" '[[ -e "$R/checkpoint.safetensors" ]]' 60
check "kill after the first checkpoint: killed while running" '[[ $killed -eq 1 ]]'
continue_and_compare "kill after the first checkpoint" "$R"

# 3. mid-run: once train.csv has a row past step 8 (after validation)
past_step() { local l; l=$(tail -n 1 "$1/train.csv" 2>/dev/null); [[ $l =~ ^([0-9]+), ]] && (( BASH_REMATCH[1] >= $2 )); }
R="$T/mid"; start "$R"; kill_when "$R" 'past_step "$R" 10' 60
check "mid-run kill (step >= 10 of 16): killed while running" '[[ $killed -eq 1 ]]'
continue_and_compare "mid-run kill" "$R"

# 4. DURING a checkpoint write (the first one, and a later one that replaces an existing checkpoint)
#    and a model write: fire the moment NAME.tmp* appears; retried until a kill lands while the temp
#    file is there (it is left behind, so we know the write was cut)
during() { # name, file prefix, 1: only once an earlier version of the file is in place
  local name="$1" pre="$2" later="$3" try R hit=0
  for try in 1 2 3 4 5 6; do
    R="$T/during_${pre%%.*}_${later}_$try"; start "$R"
    kill_when "$R" '[[ $later -eq 0 || -e "$R/$pre" ]] && compgen -G "$R/$pre.tmp*" >/dev/null' 60
    if [[ $killed -eq 1 ]] && compgen -G "$R/$pre.tmp*" >/dev/null; then hit=1; break; fi
  done
  check "$name: a SIGKILL landed during the write (attempt $try; temp file left: $(ls "$R" | grep tmp | head -1))" '[[ $hit -eq 1 ]]'
  continue_and_compare "$name" "$R"
}
during "kill during the first checkpoint write" checkpoint.safetensors 0
during "kill during a later checkpoint write" checkpoint.safetensors 1
during "kill during a model write" model.safetensors 1

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
