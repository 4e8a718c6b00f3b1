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


def test_the_command_imports_keras_without_pyplot():
    """``cesym``'s processes hide ``matplotlib.pyplot`` while Keras imports (Keras's image
    plots, unused: 0.8 s of each worker's TensorFlow import); afterwards pyplot imports as
    usual, and a library user's process (the flag unset) is left alone. Checked on the context
    itself (no TensorFlow import: seconds)."""
    code = (
        "import sys, importlib; import cesym.keras as k; from cesym.keras.calls import _without_pyplot\n"
        "with _without_pyplot():\n"
        "    importlib.import_module('matplotlib.pyplot')\n"  # the flag unset: imported as usual
        "del sys.modules['matplotlib.pyplot']\n"
        "k.HIDE_PYPLOT = True\n"
        "with _without_pyplot():\n"
        "    try:\n"
        "        importlib.import_module('matplotlib.pyplot'); print('imported')\n"
        "    except ImportError:\n"
        "        print('hidden')\n"
        "importlib.import_module('matplotlib.pyplot'); print('after', 'matplotlib.pyplot' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["hidden", "after", "True"], r.stdout + r.stderr
