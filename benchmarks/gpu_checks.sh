#!/usr/bin/env bash
# Every check that needs a CUDA device, in one run of a few minutes on an H100 / H200: the tests
# marked `gpu`, then the GPU benchmarks. From the repository root, with the real data copied into
# data/ (data/ptb and data/fashion-mnist, as in ../shared/data):
#     bash benchmarks/gpu_checks.sh            # outputs in $OUT, else gpu-results/
# It uses the python3 that holds torch (the package is put on PYTHONPATH, nothing is installed).
set -uo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 ENAS_TEST_DATA=$PWD/data PYTHONDONTWRITEBYTECODE=1
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" 2>&1 | tee "$out/device.txt"
timeout 200 python3 -m pytest -q -m gpu -p no:cacheprovider tests 2>&1 | tee "$out/gpu_tests.txt"
timeout 240 python3 benchmarks/bench_search.py --data-dir data/ptb --hidden 200 1000 2>&1 | tee "$out/bench_search.txt"
timeout 90 python3 benchmarks/bench_cnn.py --device cuda --quick 2>&1 | tee "$out/bench_cnn.txt"
