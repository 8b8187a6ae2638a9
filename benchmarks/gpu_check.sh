#!/usr/bin/env bash
# The GPU half of the vectorized mode (issue 8) in one call on a GPU machine.
#
# The project's GPU machines (the `device` tool: one H100/H200, 15 minutes of device time
# per task, 10 minutes per command, no network, a Python with torch but without this
# project's other dependencies) get one prepared command, sized to end in about 8 minutes:
#
#   1. here, on the development machine (network to the package registry, ../shared beside):
#        bash benchmarks/gpu_check.sh prepare
#      puts what the GPU machine lacks into .gpu/ (ignored by git): wheels of pydantic and
#      its dependencies for its Python 3.12 (the versions installed here), the MNIST test
#      split, and this checkout as a wheel (its entry points register the built-in variants);
#   2. there, with the device tool: command `bash benchmarks/gpu_check.sh run`,
#      carry [".gpu"], timeout_s 600. It writes to $OUT (it comes back):
#        env.txt          nvidia-smi, torch and the GPU;
#        tests.txt        tests/test_vectorized_gpu.py and the GPU tests of test_device.py;
#        bench_eager.txt  benchmarks/vectorized.py, DCGAN-MNIST at width 64: one Trainer,
#                         4 and 8 Trainer processes sharing the GPU, N = 1, 8, 32, 128 copies;
#        bench_graphs.txt the same compiled with "reduce-overhead" (CUDA graphs), N = 32, 128;
#        bench_mlp.txt    the ring MLP, eager and as CUDA graphs, N = 1, 32, 128;
#        bench_pacgan.txt PacGAN4's 2-D networks (the grid25 reproduction's slowest arm):
#                         one Trainer, 4 processes, N = 5 (a variant's seeds) and 20 copies;
#        bench_compiled.txt  the DCGAN compiled with "default" (no graphs) at N = 128.
#      Each step has its own time limit (GPU_CHECK_SCALE multiplies them) and prints each
#      row as it is measured, so one that hangs or runs long costs only its own rest; a step
#      that could run past GPU_CHECK_BUDGET (540 s) of the whole run is skipped.
#
# `GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh run` runs the same steps on the CPU,
# small, to check the script itself (tests/test_bench_vectorized.py does, in a simulated
# GPU-machine Python that lacks this project's dependencies).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here" || exit 2
stage=${GPU_CHECK_DIR:-$here/.gpu}
py=${PYTHON:-python3}

usage() {
    echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2
    echo "  prepare: on the development machine, fill .gpu/ (wheels, MNIST, this checkout)" >&2
    echo "  run:     on the GPU machine (device tool, carry [\".gpu\"]): tests and benchmarks" >&2
    exit 2
}

prepare() {
    local mnist=${HARNESS_TEST_MNIST_DIR:-$here/../shared/datasets/mnist}
    local f
    for f in t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
        [[ -f $mnist/$f ]] || { echo "gpu_check: $mnist/$f not found (set HARNESS_TEST_MNIST_DIR)" >&2; exit 2; }
    done
    rm -rf "$stage.tmp" && mkdir -p "$stage.tmp/whl" "$stage.tmp/mnist" || exit 1
    cp "$mnist"/t10k-*-ubyte.gz "$stage.tmp/mnist/" || exit 1
    # what the GPU machine's Python lacks of what the vectorized mode, its tests and its
    # benchmark import: pydantic (harness.config) and its dependencies, at the versions here
    local pins
    pins=$("$py" - <<'EOF'
import importlib.metadata as md
print(" ".join(f"{name}=={md.version(name)}" for name in
               ("pydantic", "pydantic-core", "annotated-types", "typing-inspection",
                "typing-extensions")))
EOF
    ) || exit 1
    # shellcheck disable=SC2086  # the pins are separate arguments
    "$py" -m pip download -q --no-deps --only-binary=:all: \
        --python-version "${GPU_CHECK_PYTHON_VERSION:-3.12}" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$stage.tmp/whl" $pins || exit 1
    # this checkout as a wheel: installed there with --no-deps, its entry points register
    # the built-in variants (the code itself runs from the checkout, first on PYTHONPATH)
    "$py" -m pip wheel -q --no-deps --no-build-isolation -w "$stage.tmp/whl" "$here" || exit 1
    rm -rf "$stage" && mv "$stage.tmp" "$stage" || exit 1
    echo "gpu_check: prepared $stage ($(du -sh "$stage" | cut -f1)):"
    ls "$stage/whl" "$stage/mnist"
    echo "now, with the device tool: command 'bash benchmarks/gpu_check.sh run', carry [\".gpu\"], timeout_s 600"
}

# step NAME SECONDS COMMAND...: runs COMMAND with a time limit, its output into $OUT/NAME.txt;
# skipped (and said so) when it could run past GPU_CHECK_BUDGET seconds of the whole run
step() {
    local name=$1 limit=$2
    shift 2
    limit=$("$py" -c "print(max(1, round($limit * float('${GPU_CHECK_SCALE:-1}'))))")
    local budget=${GPU_CHECK_BUDGET:-540}
    if ((SECONDS + limit > budget)); then
        echo "== $name: skipped, ${SECONDS} s spent + its ${limit} s > GPU_CHECK_BUDGET ${budget} s" \
            | tee "$OUT/$name.txt"
        return 0
    fi
    echo "== $name (at most ${limit} s): $*" | tee "$OUT/$name.txt"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" >>"$OUT/$name.txt" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$OUT/$name.txt"
    tail -n 25 "$OUT/$name.txt"
    return 0
}

run() {
    [[ -d $stage/whl && -d $stage/mnist ]] || {
        echo "gpu_check: $stage/whl and $stage/mnist missing: run 'bash benchmarks/gpu_check.sh prepare' here first and carry .gpu" >&2
        exit 2
    }
    OUT=${OUT:-$here/gpu_check_out}
    mkdir -p "$OUT" || exit 1
    local site=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
    rm -rf "$site"
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$stage"/whl/*.whl || exit 1
    export PYTHONPATH="$here:$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    export HARNESS_TEST_MNIST_DIR=$stage/mnist
    local device=${GPU_CHECK_DEVICE:-cuda}
    {
        date -u
        nvidia-smi 2>&1 || true
        "$py" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print(torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
        nproc
    } >"$OUT/env.txt" 2>&1
    cat "$OUT/env.txt"
    local bench=(benchmarks/vectorized.py --device "$device" --data "$stage/mnist" --repeat 1)
    if [[ $device == cuda ]]; then
        export HARNESS_GPU_TEST_DEVICE=cuda
        step tests 110 "$py" -m pytest -q -p no:cacheprovider tests/test_vectorized_gpu.py \
            tests/test_device.py::test_trial_trains_and_evaluates_on_the_gpu \
            tests/test_device.py::test_classifier_on_the_gpu_matches_the_cpu
        step bench_eager 120 "$py" "${bench[@]}" --model dcgan --width 64 --procs 8 \
            --copies 1,8,32,128 --steps 300 --max-seconds 4
        step bench_graphs 130 "$py" "${bench[@]}" --model dcgan --width 64 --procs 4 \
            --copies 32,128 --compile reduce-overhead --steps 300 --max-seconds 4
        step bench_mlp 80 "$py" "${bench[@]}" --procs 4 --copies 1,32,128 \
            --compile reduce-overhead --steps 500 --max-seconds 3
        step bench_pacgan 70 "$py" "${bench[@]}" --model pacgan --pack 4 --procs 4 \
            --copies 5,20 --steps 300 --max-seconds 4
        step bench_compiled 90 "$py" "${bench[@]}" --model dcgan --width 64 --procs 4 \
            --copies 128 --compile default --steps 300 --max-seconds 4
    else  # the CPU rehearsal: the same steps, small
        export HARNESS_GPU_TEST_DEVICE=cpu
        step tests 300 "$py" -m pytest -q -p no:cacheprovider tests/test_vectorized_gpu.py \
            -k "eager"
        step bench_eager 120 "$py" "${bench[@]}" --model dcgan --width 8 --procs 2 \
            --copies 2 --steps 3 --max-seconds 1
        step bench_mlp 120 "$py" "${bench[@]}" --procs 2 --copies 2 --steps 5 --max-seconds 1
        step bench_pacgan 120 "$py" "${bench[@]}" --model pacgan --pack 2 --procs 2 --copies 2 \
            --steps 3 --max-seconds 1
    fi
    echo "gpu_check: done; the outputs are in $OUT"
}

case ${1:-} in
    prepare) prepare ;;
    run) run ;;
    *) usage ;;
esac
