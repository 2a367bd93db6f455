import subprocess
import sys

import pytest

from napari_diffrendergan import backend


def test_llvm_version_is_read_from_file_names():
    assert backend.llvm_major_version("/usr/lib/x86_64-linux-gnu/libLLVM-19.so.1") == 19
    assert backend.llvm_major_version("/usr/lib/x86_64-linux-gnu/libLLVM.so.19.1") == 19
    assert backend.llvm_major_version("/usr/lib/x86_64-linux-gnu/libLLVM-15.so") == 15


def test_cpu_backend_is_chosen_here():
    if backend.cuda_available():
        pytest.skip("a GPU is present")
    chosen = backend.resolve_backend("auto")
    assert chosen.variant == "llvm_ad_mono"
    assert chosen.torch_device == "cpu"
    assert backend.llvm_major_version(chosen.llvm_path) >= backend.MIN_LLVM_MAJOR


def test_cuda_request_without_gpu_is_a_clear_error():
    if backend.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(backend.BackendError, match="no NVIDIA GPU"):
        backend.resolve_backend("cuda")


def test_unknown_device_is_rejected():
    with pytest.raises(backend.BackendError, match="Unknown device"):
        backend.resolve_backend("tpu")


def test_old_llvm_gives_error_not_abort(tmp_path):
    """An LLVM older than 17 would abort the process at the first render: refuse it first."""
    old = tmp_path / "libLLVM-15.so.1"
    old.write_bytes(b"")
    code = (
        "from napari_diffrendergan.backend import activate, BackendError\n"
        "try:\n    activate('cpu')\nexcept BackendError as e:\n    print('ERR', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"DRJIT_LIBLLVM_PATH": str(old), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ERR" in result.stdout and "libllvm19" in result.stdout
    assert "LLVM 15" in result.stdout
