#!/bin/bash
# Here, where PyPI is reachable: put into .gpu/ (git-ignored) what bench/gpu.sh needs on a GPU
# machine that has Python 3.12 with torch, lightning and torchaudio but no network and none of
# this project's other packages:
#   .gpu/whl/    wheels for Python 3.12 (versions from requirements.txt), installed there
#   .gpu/emodb/  the Emo-DB copy (SER_EMODB_ROOT, else ../shared/data/emodb)
# About 50 MB. Then run bench/gpu.sh there with .gpu carried (docs/hardware.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pin() { grep -E "^$1==" requirements.txt; }
rm -rf .gpu/whl && mkdir -p .gpu/whl
$PYTHON -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/whl \
  "$(pin hydra-core)" "$(pin omegaconf)" "$(pin soundfile)" "$(pin submitit)" \
  "$(pin hydra-submitit-launcher)" "$(pin cloudpickle)" cffi==2.1.1 pycparser==3.12
# antlr4 4.9.3 (what omegaconf 2.3 needs) is published as a source archive only: pure Python
$PYTHON -m pip wheel -q --no-deps -w .gpu/whl antlr4-python3-runtime==4.9.3
emodb=${SER_EMODB_ROOT:-../shared/data/emodb}
[ -d "$emodb/wav" ] || { echo "error: no Emo-DB copy at $emodb (set SER_EMODB_ROOT)" >&2; exit 2; }
rm -rf .gpu/emodb.tmp && cp -r "$emodb" .gpu/emodb.tmp
rm -rf .gpu/emodb && mv .gpu/emodb.tmp .gpu/emodb
du -sh .gpu/whl .gpu/emodb
