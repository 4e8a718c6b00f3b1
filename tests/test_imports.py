"""`from cesym import kernels` needs NumPy only."""

import subprocess
import sys


def test_kernels_import_no_heavy_modules():
    code = (
        "import sys; from cesym import kernels; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'sympy', 'mpmath', 'tensorflow', 'keras', 'scipy', 'torch'}); "
        "print(','.join(heavy))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "", f"cesym.kernels imported {r.stdout.strip()}"
