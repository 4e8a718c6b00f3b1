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


def test_the_reference_does_not_import_the_rewrites():
    """The reference evaluates the definition: a rule that changed a value cannot change the
    number it is checked against (issue 10, part 5)."""
    code = (
        "import sys; import cesym.verify.reference; "
        "print(','.join(sorted(m for m in sys.modules if m.startswith(('cesym.rewrite', 'cesym.derive', 'cesym.generate')))))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "", f"cesym.verify.reference imported {r.stdout.strip()}"
