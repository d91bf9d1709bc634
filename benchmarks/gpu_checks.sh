#!/usr/bin/env bash
# Every check that needs a CUDA device, in one run of under five minutes on an H100 / H200: the tests
# marked `gpu`, then the GPU benchmarks, each under its own timeout (they sum to 290 s). From the
# repository root, with the real data copied into data/ (data/ptb and data/fashion-mnist, as in
# ../shared/data; a device machine receives only the paths its call carries):
#     bash benchmarks/gpu_checks.sh            # outputs in $OUT, else gpu-results/
# It uses the python3 that holds torch; the package is put on PYTHONPATH and nothing is installed
# (the notebooks' tests skip themselves where nbformat is missing). Exit status: 0 only when every
# step passed; the last lines name the steps that failed.
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 ENAS_TEST_DATA=$PWD/data PYTHONDONTWRITEBYTECODE=1
failed=()

step() {  # step NAME SECONDS COMMAND...: run it under a timeout, its output also in $out/NAME.txt
    local name=$1 seconds=$2
    shift 2
    echo "== $name (at most $seconds s)"
    timeout "$seconds" "$@" 2>&1 | tee "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    if [ "$rc" -ne 0 ]; then
        failed+=("$name (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))")
    fi
}

for f in data/ptb/ptb.train.txt data/ptb/ptb.valid.txt data/ptb/ptb.test.txt \
         data/fashion-mnist/train-images-idx3-ubyte.gz data/fashion-mnist/t10k-images-idx3-ubyte.gz; do
    [ -s "$f" ] || { echo "error: $f is missing: copy ../shared/data to data/ and carry it"; exit 2; }
done

step device 20 python3 -c "
import sys, torch
if not torch.cuda.is_available():
    sys.exit('error: torch ' + torch.__version__ + ' sees no CUDA device')
p = torch.cuda.get_device_properties(0)
print(f'device: {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}; '
      f'torch {torch.__version__}, CUDA {torch.version.cuda}')"
[ ${#failed[@]} -eq 0 ] || { echo "error: no CUDA device: nothing else can run"; exit 1; }

# the GPU tests by marker over the whole suite; setup.cfg's addopts (xdist, `not gpu`) are left out
step gpu_tests 110 python3 -m pytest -o addopts="" -p no:cacheprovider -m gpu -q -rs tests
if grep -qE "[0-9]+ skipped" "$out/gpu_tests.txt"; then
    failed+=("gpu_tests (some skipped: each must run on the device)")
fi

# shared step and update ms at hidden 200 and 1000: graphed, eager (dense), eager (row-sparse), TF32,
# bf16 and the plain baseline, with the graphs' captures and replays; first graphed == eager
step bench_search 130 python3 benchmarks/bench_search.py --data-dir data/ptb --hidden 200 1000 --check \
    --steps 10 --updates 3 --rounds 3
step bench_cnn 30 python3 benchmarks/bench_cnn.py --device cuda --quick

if [ ${#failed[@]} -ne 0 ]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "all GPU checks passed"
