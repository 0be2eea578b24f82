#!/bin/bash
# The one prepared script for a GPU machine: bench rows on the GPU and the CPU, the Emo-DB
# sweep at SEED.md's widths and schedule, and the IEMOCAP-sized sweep on a synthetic corpus,
# each timed (docs/hardware.md). Here first: bash bench/gpu_bundle.sh. There:
#   bash bench/gpu.sh               (with .gpu/ copied along; results in $OUT)
# Wheels from .gpu/whl are installed (into $GPU_WORK/site) only where packages are missing.
# Time boxes in seconds: THROUGHPUT_S (90), SYNC_S (45), EMODB_S (180), IEMOCAP_S (120).
# A sweep stopped by its box records the runs and training steps it finished. At most 8
# files land in $OUT (default bench/out):
#   env.txt            date, nvidia-smi, versions
#   throughput.json    bench/throughput.py rows: --devices cuda cpu, --dtypes fp32 bf16
#   emodb.json         the 4 models x 10 folds Emo-DB sweep (experiment=emodb_4class), timed
#   emodb_summary.md   its summary, when it finished
#   syncs.json         host syncs per training step of one ADSRNN run (bench/sync_check.py)
#   iemocap.json       the IEMOCAP-improvised-sized sweep (bench/synthetic_iemocap.py), timed
#   gpu.log            everything printed
# Options (environment): PYTHON (python3), GPU_WORK (/tmp/ser-gpu), EMODB_ARGS and
# IEMOCAP_ARGS (more sweep.py overrides), IEMOCAP_SCALE (corpus size, 1.0), THROUGHPUT_ARGS
# (more bench/throughput.py options), SYNC_ARGS (train.py overrides instead of model=adsrnn
# trainer.max_steps=30). To try it on a CPU:
#   EMODB_ARGS="debug=fast model=asrnn fold=0" IEMOCAP_ARGS="debug=fast model=asrnn fold=0" \
#   SYNC_ARGS="debug=fast model=asrnn" IEMOCAP_SCALE=0.02 THROUGHPUT_ARGS="--models asrnn@small" \
#   OUT=/tmp/gpu-try bash bench/gpu.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
WORK=${GPU_WORK:-/tmp/ser-gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$WORK"
# timings need empty sweep folders and a cold feature cache, also on a second call
rm -rf "$WORK/sweeps" "$WORK/cache" "$WORK/sync-cache"
exec > >(tee -a "$OUT/gpu.log") 2>&1
needed="import hydra, omegaconf, soundfile, submitit, cloudpickle"
if ! $PY -c "$needed" 2>/dev/null; then
  ls .gpu/whl/*.whl >/dev/null 2>&1 \
    || { echo "error: packages missing and no .gpu/whl: run bench/gpu_bundle.sh first"; exit 2; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$WORK/site" .gpu/whl/*.whl || exit 1
  export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
$PY -c "$needed; import hydra_plugins.ser_launcher.launcher" \
  || { echo "error: $PY cannot import this project's packages (see above)"; exit 2; }
export SER_ROOT=$WORK SER_CACHE_DIR=$WORK/cache
export SER_EMODB_ROOT=${SER_EMODB_ROOT:-$PWD/.gpu/emodb}
quiet="logger=csv datamodule.progress=false print_config=false"
{
  date -u
  nvidia-smi || echo "nvidia-smi: not available"
  nvidia-smi --query-gpu=compute_mode --format=csv 2>/dev/null
  $PY -c "import torch, lightning, hydra; print('torch', torch.__version__, 'lightning',
lightning.__version__, 'hydra', hydra.__version__, 'GPU',
torch.cuda.is_available() and torch.cuda.get_device_name(0))"
  # the dtype an LSTM runs in under CUDA's bf16 autocast: nn.LSTM's (cuDNN's cast) and ser's
  $PY -c "import torch; from ser.models.blocks import LSTM
if torch.cuda.is_available():
    x = torch.randn(2, 5, 8, device='cuda')
    with torch.autocast('cuda', dtype=torch.bfloat16):
        print('LSTM under bf16 autocast: nn.LSTM', torch.nn.LSTM(8, 4).cuda()(x)[0].dtype,
              'ser LSTM', LSTM(8, 4).cuda()(x)[0].dtype)"
  echo "CPU cores: $(nproc)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

echo "== throughput (box ${THROUGHPUT_S:-90} s)"
devices="cpu"  # GPU rows first: the box may cut the slow CPU rows
$PY -c "import torch, sys; sys.exit(not torch.cuda.is_available())" && devices="cuda cpu"
timeout -k 15 "${THROUGHPUT_S:-90}" $PY bench/throughput.py --devices $devices \
  --dtypes fp32 bf16 --warmup 1 --steps 3 --keep-freed-memory --json "$OUT/throughput.json" \
  ${THROUGHPUT_ARGS:-}

echo "== host syncs in ADSRNN's training steps (box ${SYNC_S:-45} s)"
# a cache of its own: the Emo-DB sweep below starts from a cold one
SER_CACHE_DIR=$WORK/sync-cache timeout -k 15 "${SYNC_S:-45}" $PY bench/sync_check.py \
  --json "$OUT/syncs.json" -- ${SYNC_ARGS:-model=adsrnn trainer.max_steps=30} precision=bf16 $quiet

echo "== Emo-DB, 4 models x 10 folds, SEED.md widths and schedule (box ${EMODB_S:-180} s)"
$PY bench/sweep_timing.py --name emodb-seed-schedule --sweep-dir "$WORK/sweeps/emodb" \
  --json "$OUT/emodb.json" --timeout "${EMODB_S:-180}" -- \
  experiment=emodb_4class precision=bf16 hydra/launcher=ser_local $quiet ${EMODB_ARGS:-}
[ -f "$WORK/sweeps/emodb/summary.md" ] && cp "$WORK/sweeps/emodb/summary.md" "$OUT/emodb_summary.md"

echo "== IEMOCAP-improvised-sized (synthetic), SEED.md schedule (box ${IEMOCAP_S:-120} s)"
$PY bench/synthetic_iemocap.py "$WORK/iemocap_synth" ${IEMOCAP_SCALE:+--scale $IEMOCAP_SCALE} \
  || exit 1
$PY bench/sweep_timing.py --name iemocap-sized --sweep-dir "$WORK/sweeps/iemocap" \
  --json "$OUT/iemocap.json" --timeout "${IEMOCAP_S:-120}" -- \
  experiment=seed_iemocap data=manifest "data.manifest=$WORK/iemocap_synth/manifest.csv" \
  precision=bf16 hydra/launcher=ser_local $quiet ${IEMOCAP_ARGS:-}
ls -l "$OUT"
exec >&- 2>&-  # let tee write the end of gpu.log before the script returns
wait
