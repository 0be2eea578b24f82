#!/bin/bash
# The prepared script for a session lent a GPU (DEVELOPERS.md, issue 11): bench rows on the
# CPU and the GPU, the Emo-DB sweep at SEED.md's widths and schedule, and the IEMOCAP-sized
# sweep on a synthetic corpus, each timed. Here first: bash bench/gpu_bundle.sh. There:
#   bash bench/gpu.sh                       (with .gpu carried; results in $OUT)
# The wheels in .gpu/whl are installed (into $GPU_WORK/site) only where the packages are
# missing. Each step has a time box in seconds: THROUGHPUT_S (90), EMODB_S (180), IEMOCAP_S (60). A
# sweep stopped by its box records how many runs finished in it. At most 8 files land in
# $OUT (default bench/out):
#   env.txt            date, nvidia-smi, versions
#   throughput.json    bench/throughput.py rows, --devices cuda cpu, --dtypes fp32 bf16
#   emodb.json         the 4 models x 10 folds Emo-DB sweep (experiment=emodb_4class), timed
#   emodb_summary.md   its summary, when it finished
#   iemocap.json       the IEMOCAP-improvised-sized sweep (bench/synthetic_iemocap.py), timed
#   gpu.log            everything printed
# EMODB_ARGS / IEMOCAP_ARGS add sweep.py overrides, THROUGHPUT_ARGS bench/throughput.py options
# (e.g. to try the script on a CPU: EMODB_ARGS="debug=fast model=asrnn fold=0").
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
WORK=${GPU_WORK:-/tmp/ser-gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/gpu.log") 2>&1
if ! $PY -c "import hydra, omegaconf, soundfile, submitit" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" .gpu/whl/*.whl || exit 1
  export PYTHONPATH=$WORK/site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export SER_ROOT=$WORK SER_CACHE_DIR=$WORK/cache
export SER_EMODB_ROOT=${SER_EMODB_ROOT:-$PWD/.gpu/emodb}
quiet="logger=csv datamodule.progress=false callbacks.progress_bar=null print_config=false"
{
  date -u
  nvidia-smi || echo "nvidia-smi: not available"
  $PY -c "import torch, lightning, hydra; print('torch', torch.__version__, 'lightning', lightning.__version__, 'hydra', hydra.__version__, 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== throughput (box ${THROUGHPUT_S:-90} s)"
devices="cpu"; $PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())" && devices="cuda cpu"  # GPU rows first: the box may stop the slow CPU rows
timeout "${THROUGHPUT_S:-90}" $PY bench/throughput.py --devices $devices --dtypes fp32 bf16 \
  --warmup 1 --steps 3 --keep-freed-memory --json "$OUT/throughput.json" ${THROUGHPUT_ARGS:-}

echo "== Emo-DB, 4 models x 10 folds, SEED.md widths and schedule (box ${EMODB_S:-180} s)"
$PY bench/sweep_timing.py --name emodb-seed-schedule --sweep-dir "$WORK/sweeps/emodb" \
  --json "$OUT/emodb.json" --timeout "${EMODB_S:-180}" -- \
  experiment=emodb_4class hydra/launcher=ser_local $quiet ${EMODB_ARGS:-}
[ -f "$WORK/sweeps/emodb/summary.md" ] && cp "$WORK/sweeps/emodb/summary.md" "$OUT/emodb_summary.md"

echo "== IEMOCAP-improvised-sized (synthetic), SEED.md widths and schedule (box ${IEMOCAP_S:-60} s)"
$PY bench/synthetic_iemocap.py "$WORK/iemocap_synth" ${IEMOCAP_SCALE:+--scale $IEMOCAP_SCALE} || exit 1
$PY bench/sweep_timing.py --name iemocap-sized --sweep-dir "$WORK/sweeps/iemocap" \
  --json "$OUT/iemocap.json" --timeout "${IEMOCAP_S:-60}" -- \
  experiment=seed_iemocap data=manifest "data.manifest=$WORK/iemocap_synth/manifest.csv" \
  hydra/launcher=ser_local $quiet ${IEMOCAP_ARGS:-}
ls -l "$OUT"
