#!/usr/bin/env bash
# A reproduction preset on a GPU node, as one command:
#
#   bash benchmarks/reproduce_gpu.sh PRESET [OUT]
#
# PRESET is a file name under studies/reproduce/ without .yaml (stacked-mnist, pacgan-2d,
# ...); OUT (default: reproductions/PRESET-<date>) receives the MLflow store and the report.
# It needs the project installed as the README says (pip install -e .) and a CUDA GPU: it
# stops with exit 2 before anything starts when torch sees none (a CPU run of a GPU-sized
# preset would take days; the CPU twins, e.g. stacked-mnist-cpu, are meant for CPUs).
# The preset's `device: auto` puts each trial on the GPU and its resources share it between
# concurrent trials (stacked-mnist: 4 at a time, gpu 0.25 each).
#
# What it prints and keeps: nvidia-smi and torch versions in OUT/env.txt, the study's
# progress on stdout and in OUT/study.log, the report where the study prints it (under OUT/runs/). An interrupted run
# continues with `cd OUT && harness study --resume <preset file>`.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
preset=${1:-}
if [[ -z $preset ]]; then
    echo "usage: bash benchmarks/reproduce_gpu.sh PRESET [OUT]; presets:" \
         "$(cd "$here/studies/reproduce" && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
    exit 2
fi
file=$here/studies/reproduce/$preset.yaml
if [[ ! -f $file ]]; then
    echo "reproduce_gpu: no preset $preset ($file not found); presets:" \
         "$(cd "$here/studies/reproduce" && ls *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')" >&2
    exit 2
fi
py=${PYTHON:-python3}
if [[ ${REPRODUCE_ALLOW_CPU:-0} != 1 ]] && ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "reproduce_gpu: torch sees no CUDA GPU on this machine; run the CPU twin instead" \
         "(harness study studies/reproduce/$preset-cpu.yaml, where one exists)" >&2
    exit 2
fi
out=${2:-$here/reproductions/$preset-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out" || exit 1
cd "$out" || exit 1
{
    date -u
    nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
} > env.txt 2>&1
export RAY_USAGE_STATS_ENABLED=${RAY_USAGE_STATS_ENABLED:-0}
start=$(date +%s)
harness study "$file" 2>&1 | tee study.log
rc=${PIPESTATUS[0]}
echo "reproduce_gpu: $preset finished with exit $rc in $(( $(date +%s) - start )) s; store and report under $out/runs" | tee -a study.log
exit "$rc"
