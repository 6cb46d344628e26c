# Sourced by the benchmarks with a PyTorch peer (bop-bench.sh, competition-bench.sh), from the repository root in
# $root: PyPI's torch in .build/bop-torch-venv (made once; the CPU-only index is not reachable here, so pip pulls
# the CUDA build, of which only the CPU path runs), one thread for every pool (OpenBLAS, OpenMP/MKL, PyTorch's),
# `pin` = taskset on core 0 where it works, and a line saying the machine's state.
venv="$root/.build/bop-torch-venv"
if ! "$venv/bin/python" -c "import torch, safetensors, numpy" 2>/dev/null; then
  echo "installing torch, safetensors, numpy into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch safetensors numpy >&2
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
pin=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then pin=(taskset -c 0); fi
echo "$(getconf _NPROCESSORS_ONLN) cores; load average $(cut -d' ' -f1-3 /proc/loadavg); pinned: ${pin[*]:-no (taskset unavailable)}" >&2
