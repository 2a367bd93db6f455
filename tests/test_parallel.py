"""The Dask helper's local workers: their environment and the errors of bad worker counts."""

import os

import pytest

from napari_diffrendergan.errors import InputError
from napari_diffrendergan.parallel import map_on_dask


def test_local_workers_get_the_env_asked_for_and_glibc_default_trimming(monkeypatch):
    # as another Dask cluster of the same process leaves it
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    names = [("DIFFRENDERGAN_TEST_VALUE",), ("MALLOC_TRIM_THRESHOLD_",), ("OMP_NUM_THREADS",)]
    got = list(map_on_dask(os.getenv, names, env={"DIFFRENDERGAN_TEST_VALUE": "7"}))
    # results arrive in any order; Dask's own trimming threshold (a 27 % slower render) is not
    # passed on, its one-thread numpy setting is
    assert sorted(got, key=str) == sorted(["7", None, "1"], key=str)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # this process's own left alone


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_bad_worker_counts_name_the_problem(workers):
    with pytest.raises(InputError, match="whole number"):
        list(map_on_dask(os.getenv, [("HOME",)], workers=workers))


def test_local_workers_are_capped_at_the_cores_but_a_scheduler_decides_its_own():
    from napari_diffrendergan.parallel import check_workers

    cores = os.cpu_count() or 1
    check_workers(cores)
    check_workers(cores + 1, scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(InputError, match=f"use at most {cores}"):
        check_workers(cores + 1)
