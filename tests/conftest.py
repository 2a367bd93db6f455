import os
from pathlib import Path

import pytest

SHARED_TIO2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tio2-sem"

if SHARED_TIO2.is_dir():
    os.environ.setdefault("DIFFRENDERGAN_TIO2_SEM_DIR", str(SHARED_TIO2))


@pytest.fixture
def tio2_dir() -> Path:
    if not SHARED_TIO2.is_dir():
        pytest.skip(f"real TiO2 SEM data not found at {SHARED_TIO2} (../shared/data/tio2-sem)")
    return SHARED_TIO2
