# shellcheck shell=bash
# Source at the start of every command on the GPU machine (docs/gpu.md):
#
#   source benchmarks/gpu/env.sh
#
# The GPU image has torch, triton, numpy, scipy, matplotlib, typer, rich and filelock but not
# seqbench's pydantic, pooch and platformdirs: they are installed from the carried .gpu/wheels
# (never from the network) when missing. seqbench itself runs from this checkout through
# PYTHONPATH (no install step, no build backend needed); `seqbench` is defined as a shell
# function for `python3 -m seqbench`. The carried .gpu/data becomes the data folder
# (SEQBENCH_DATA_DIR, unless set), where the suites' `file =` datasets are found
# (.gpu/data/amazon-beauty/Beauty.txt, …). The dataset cache goes to .gpu/cache.
_gpu_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PYTHONPATH="$_gpu_repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export SEQBENCH_CACHE_DIR=${SEQBENCH_CACHE_DIR:-$_gpu_repo/.gpu/cache}
_gpu_pybin=$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))')
case ":$PATH:" in *":$_gpu_pybin:"*) ;; *) export PATH="$_gpu_pybin:$PATH" ;; esac

if ! python3 -c "import pydantic, pooch, platformdirs" >/dev/null 2>&1; then
    echo "env.sh: installing seqbench's missing dependencies from .gpu/wheels"
    python3 -m pip install --quiet --no-index --find-links "$_gpu_repo/.gpu/wheels" \
        "pydantic>=2.5" "pooch>=1.8" "platformdirs>=3" \
        || echo "env.sh: installing from .gpu/wheels failed (above)" >&2
fi
if [ -z "${SEQBENCH_DATA_DIR:-}" ] && [ -d "$_gpu_repo/.gpu/data" ]; then
    export SEQBENCH_DATA_DIR="$_gpu_repo/.gpu/data"
fi
seqbench() { python3 -m seqbench "$@"; }
python3 -c "import seqbench.cli.main" \
    || echo "env.sh: seqbench does not import here (above); check .gpu/wheels" >&2
unset _gpu_pybin
