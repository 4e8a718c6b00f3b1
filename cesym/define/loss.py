"""Define: what a file in ``derivations/`` declares, and how it is loaded.

A derivation file is a Python module that builds SymPy expressions and lists them in ``LOSSES``,
a list of :class:`Loss`, and its public functions in ``PUBLIC``, a list of
:class:`cesym.define.declare.Public` (optional: without it each loss is one public function, see
:func:`default_public`). It holds the mathematics only: no NumPy, no rewrite, no gradient.
"""

from __future__ import annotations

import dataclasses

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sympy as sp

from .declare import AXIS, Keyword, Public, Variant
from .conventions import label_times_log, label_times_power
from .primitives import C, Elem, element_symbols

__all__ = [
    "Loss", "N", "DerivationError", "Family", "load_family", "load_families", "load_derivation", "load_all",
    "derivation_files", "default_public", "DERIVATIONS_DIR",
]

#: Number of rows in the batch (used by the batch-mean activity penalty).
N = sp.Symbol("N", positive=True, integer=True)


def _derivations_dir() -> Path:
    """``cesym/derivations`` in an installed package (the wheel maps the repository's top-level
    ``derivations/`` there, see pyproject.toml), else the source tree's ``derivations/``."""
    here = Path(__file__).resolve().parents[1]  # the cesym package
    installed = here / "derivations"
    return installed if installed.is_dir() else here.parent / "derivations"


#: Where the derivation files live: the repository's ``derivations/``, shipped in the package.
DERIVATIONS_DIR = _derivations_dir()


class DerivationError(Exception):
    """A derivation file cannot be loaded or does not define a valid loss."""


@dataclass(frozen=True)
class Loss:
    """One loss variant as mathematics.

    Attributes:
        family: the derivation family (its file name), e.g. ``"binary_crossentropy"``.
        variant: the kernel name inside the family, e.g. ``"logits"``.
        title: one line saying what it is.
        value: the loss of one row: row-level (reduced over the class axis) or element-level
            (an elementwise loss such as ``tf.nn.sigmoid_cross_entropy_with_logits``).
        prediction: the element symbol differentiated (``p`` or ``z``).
        label: the element symbol of the labels, or None.
        weights: label weights (element symbols the loss is linear in) and their definitions in
            terms of the label and the parameters, e.g. the smoothed label.
        params: scalar parameters in argument order (e.g. ``label_smoothing``).
        domain: ``"probability"`` (a prediction may be 0 or 1, logs may be infinite, so label
            weights get the 0·∞ = 0 guard), ``"real"`` (finite everywhere) or ``"log1p"``
            (a prediction >= -1, where -1 is the edge at which log(1 + p) is -inf).
        differentiable: False for value-only definitions.
        label_index: the label is the indicator ``[c = k]`` of an integer class ``k`` (a one-hot
            row; all zero for an ignored sample). The kernels then take ``k`` itself, and sums
            against the label become a look-up of element ``k``.
        param_ranges: the closed range ``(lo, hi)`` of each parameter that is not [0, 1] (the
            range of ``label_smoothing``, the default); ``cesym generate`` evaluates the kernels
            at both ends (:mod:`cesym.generate.edges`).
        keras: what Keras computes instead of ``value``, in the same symbols (its ε floors and
            clips as ``Max``/``Min``, its own formula), for the model of Keras's algorithm
            (:mod:`cesym.keras.model`); None: Keras computes the definition. Never generated.
    """

    family: str
    variant: str
    title: str
    value: sp.Expr
    prediction: Elem
    label: Elem | None = None
    weights: dict[Elem, sp.Expr] = field(default_factory=dict)
    params: tuple[sp.Symbol, ...] = ()
    domain: Literal["probability", "real", "log1p"] = "real"
    differentiable: bool = True
    notes: str = ""
    label_index: bool = False
    param_ranges: dict[sp.Symbol, tuple[float, float]] = field(default_factory=dict)
    keras: sp.Expr | None = None

    @property
    def name(self) -> str:
        return f"{self.family}.{self.variant}"

    def param_range(self, q: sp.Symbol) -> tuple[float, float]:
        """The declared range of parameter ``q`` ([0, 1] unless ``param_ranges`` says otherwise)."""
        lo, hi = self.param_ranges.get(q, (0.0, 1.0))
        return float(lo), float(hi)

    @property
    def weight_definitions(self) -> dict:
        """Each label weight that is not the label itself, with its definition
        (``{one_minus_y: 1 - y}``): what to substitute to read the loss in its labels."""
        return {w: d for w, d in self.weights.items() if d != w}

    @property
    def row_level(self) -> bool:
        return not element_symbols(self.value)

    def validate(self) -> None:
        """Raise :class:`DerivationError` when the definition is inconsistent."""
        if not isinstance(self.value, sp.Basic):
            raise DerivationError(f"{self.name}: value is not a SymPy expression")
        allowed = {self.prediction, C, N, *self.weights, *self.params}
        if self.label is not None:
            allowed.add(self.label)
        unknown = self.value.free_symbols - allowed
        if unknown:
            raise DerivationError(
                f"{self.name}: value uses undeclared symbol(s) {', '.join(sorted(map(str, unknown)))}"
            )
        foreign = sorted({type(f).__name__ for f in self.value.atoms(sp.Function) if not _supported(f)})
        if foreign:
            raise DerivationError(
                f"{self.name}: value uses {', '.join(foreign)}, which cesym does not support: its rewrites, "
                f"reference and kernels know {SUPPORTED_FUNCTIONS} and the primitives of cesym.define"
            )
        if self.keras is not None:
            if not isinstance(self.keras, sp.Basic):
                raise DerivationError(f"{self.name}: keras is not a SymPy expression")
            extra = self.keras.free_symbols - allowed
            if extra:
                raise DerivationError(f"{self.name}: keras uses undeclared symbol(s) {', '.join(sorted(map(str, extra)))}")
        for w, d in self.weights.items():
            extra = d.free_symbols - {self.label, C, *self.params}
            if extra:
                raise DerivationError(f"{self.name}: weight {w} uses undeclared {sorted(map(str, extra))}")
        for q, r in self.param_ranges.items():
            if q not in self.params:
                raise DerivationError(f"{self.name}: param_ranges names {q}, which is not a parameter")
            if not (isinstance(r, tuple) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r) and r[0] <= r[1]):
                raise DerivationError(f"{self.name}: param_ranges[{q}] must be a pair (lo, hi) of numbers with lo <= hi")
        if self.domain not in ("probability", "real", "log1p"):
            raise DerivationError(f"{self.name}: domain must be 'probability', 'real' or 'log1p'")


#: The SymPy functions a definition may use (besides +, ·, powers, sqrt and cesym's primitives).
SUPPORTED_FUNCTIONS = "exp, log, log1p, expm1, Abs, Max, Min, Piecewise, Heaviside, sign, sinh, cosh, tanh"
_SUPPORTED = frozenset(SUPPORTED_FUNCTIONS.split(", "))


def _supported(f: sp.Basic) -> bool:
    return type(f).__name__ in _SUPPORTED or (type(f).__module__ or "").startswith("cesym.")


@dataclass(frozen=True)
class Family:
    """One derivation file: its losses, its public functions and its docstring."""

    name: str
    path: Path
    losses: tuple[Loss, ...]
    public: tuple[Public, ...]
    doc: str = ""


def load_family(path: Path) -> Family:
    """Execute one derivation file and return its ``LOSSES`` and ``PUBLIC``.

    Raises :class:`DerivationError` with a one-line message naming the file for a syntax error,
    an undefined name, an inconsistent declaration, or anything else the file does wrong.
    """
    path = Path(path)
    modname = f"cesym_derivation_{path.stem}"
    try:
        spec = importlib.util.spec_from_file_location(modname, path)
        if spec is None or spec.loader is None:
            raise DerivationError(f"{path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(modname, None)
    except DerivationError:
        raise
    except SyntaxError as e:
        raise DerivationError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # any error raised while building the expressions
        line = _user_line(e, path)
        raise DerivationError(f"{path}{line}: {type(e).__name__}: {e}") from None
    losses = getattr(module, "LOSSES", None)
    if not isinstance(losses, list) or not all(isinstance(x, Loss) for x in losses) or not losses:
        raise DerivationError(f"{path}: LOSSES must be a non-empty list of cesym.define.loss.Loss")
    for loss in losses:
        if loss.family != path.stem:
            raise DerivationError(f"{path}: loss family {loss.family!r} must match the file name {path.stem!r}")
        loss.validate()
    if len({l.variant for l in losses}) != len(losses):
        raise DerivationError(f"{path}: two losses share a variant name")
    public = getattr(module, "PUBLIC", None)
    if public is None:
        public = default_public(losses)
    if not isinstance(public, list) or not all(isinstance(x, Public) for x in public):
        raise DerivationError(f"{path}: PUBLIC must be a list of cesym.define.declare.Public")
    params = {l.variant: {q.name for q in l.params} for l in losses}
    cores = {f"{v}_{k}" for v in params for k in ("value", "grad", "value_and_grad", "naive_value", "naive_grad", "weights")}
    for pub in public:
        clash = {pub.name + s for s in ("", "_grad", "_value_and_grad")} & cores
        if clash:
            raise DerivationError(f"{path}: PUBLIC: {pub.name}: the name {sorted(clash)[0]} is a generated kernel's too; rename the loss variant")
        errs = pub.validate(set(params), params)
        if errs:
            raise DerivationError(f"{path}: PUBLIC: {errs[0]}")
    losses = [_label_weights(_non_negative(loss, public)) for loss in losses]
    return Family(path.stem, path, tuple(losses), tuple(public), (module.__doc__ or "").strip())


def _non_negative(loss: Loss, public: list) -> Loss:
    """``loss`` on ``domain='probability'`` (non-negative predictions: 0 an edge, logs infinite
    there) where it is declared on the real line but every public variant of it takes
    non-negative predictions only (``positive``, ``unit``, ``simplex``): generate's edge check
    then tests the domain the functions accept (a contrastive loss on distances was refused
    for a NaN at a negative distance)."""
    domains = {v.domain for pub in public for v in pub.variants if v.loss == loss.variant}
    if loss.domain == "real" and domains and domains <= {"positive", "unit", "simplex"}:
        return dataclasses.replace(loss, domain="probability")
    return loss


def _label_weights(loss: Loss) -> Loss:
    """``loss`` with its label declared a weight where it multiplies a log of the prediction on
    ``domain='probability'`` and no weights are declared (-Σ y·log p written plainly): the
    convention 0·f = 0 (:mod:`cesym.define.conventions`) then holds, as the limit from inside the
    domain does (a zero label's term is 0 for every p > 0, so 0 at the edge p = 0, where the
    kernel gave 0·(-inf) = NaN); likewise where it multiplies a power of the prediction with a
    symbolic exponent (a β-divergence's y·p^(β - 1), whose derivative is 0·inf at y = p = 0).
    A factor ``1 - y`` becomes a weight of its own,
    ``one_minus_y = 1 - y`` (as binary cross-entropy declares t and u): collected on y alone,
    ``a·y + (1 - y)·b`` would be ``y·(a - b) + b``, which cancels at y = 1."""
    y = loss.label
    if loss.weights or loss.domain != "probability" or y is None or loss.label_index:
        return loss
    if not (label_times_log(loss.value, y, loss.prediction) or label_times_power(loss.value, y, loss.prediction)):
        return loss
    weights: dict = {y: y}
    value = loss.value
    if value.has(1 - y):
        u = Elem(f"one_minus_{y.name}")
        value = value.xreplace({1 - y: u})
        weights[u] = 1 - y
    return dataclasses.replace(loss, value=value, weights=weights)


def load_derivation(path: Path) -> list[Loss]:
    """The ``LOSSES`` of one derivation file (:func:`load_family`)."""
    return list(load_family(path).losses)


def _affine_in_label(loss: Loss) -> bool:
    """Whether ``loss``'s value (its label weights written out) is affine in its label: its
    derivative with respect to the label holds no label."""
    v = loss.value.xreplace(loss.weights) if loss.weights else loss.value
    try:
        d = sp.diff(v, loss.label)
    except Exception:  # noqa: BLE001 - a definition SymPy cannot differentiate: no claim
        return False
    return d != 0 and not d.has(loss.label) and not d.has(sp.Derivative)


def default_public(losses: list[Loss]) -> list[Public]:
    """The public functions of a file without ``PUBLIC``: one per loss, named after the file
    (``<file>_<variant>`` when it has several), with every parameter a real keyword (no default),
    dense labels (class indices for ``label_index``) and the declared domain.

    The labels' kind follows the mathematics: distributions for a row-level loss on
    probabilities; for one affine in its label (a cross-entropy written out, y·log p + (1 - y)·
    log(1 - p), whose labels weigh its terms) "binary", each label in [0, 1]; "real" otherwise
    (a regression target). Declare ``PUBLIC`` to say otherwise."""
    out = []
    for loss in losses:
        name = loss.family if len(losses) == 1 else f"{loss.family}_{loss.variant}"
        if loss.label is None:
            labels = "none"
        elif loss.label_index:
            labels = "index"
        else:
            labels = "distribution" if loss.domain == "probability" and loss.row_level else ("binary" if _affine_in_label(loss) else "real")
        keywords = tuple(Keyword(q.name, None, "real", loss.param_range(q)) for q in loss.params)
        if loss.row_level:
            keywords += (AXIS,)
            reduction = "row"
        else:
            reduction = "element"
        domain = {"probability": "unit", "log1p": "log1p"}.get(loss.domain, "real")
        out.append(Public(
            name=name, summary=loss.title, variants=(Variant(loss.variant, domain=domain, limits=None),),
            labels=labels, args=("y_true", "y_pred") if labels != "none" else ("y_pred",), keywords=keywords,
            reduction=reduction,
        ))
    return out


def _user_line(exc: BaseException, path: Path) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == path.resolve():
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line


def derivation_files(directory: Path = DERIVATIONS_DIR) -> list[Path]:
    """The derivation files of ``directory`` (``*.py`` not starting with ``_``), in name order.

    Raises :class:`DerivationError` when ``directory`` is not a directory or holds none: an
    empty or mistyped directory must never read as "no losses".
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DerivationError(f"{directory}: no such derivations directory")
    files = [p for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")]
    if not files:
        raise DerivationError(f"{directory}: no derivation files (*.py) in this directory")
    return files


def load_families(directory: Path = DERIVATIONS_DIR) -> dict[str, Family]:
    """Load every ``*.py`` derivation in ``directory``, keyed by family, in name order.

    Raises :class:`DerivationError` when two files declare the same public name."""
    families = {path.stem: load_family(path) for path in derivation_files(directory)}
    seen: dict[str, str] = {}
    for fam in families.values():
        for pub in fam.public:
            if pub.name in seen:
                raise DerivationError(f"{fam.path}: public name {pub.name!r} is declared by {seen[pub.name]} too")
            seen[pub.name] = f"{fam.name}.py"
    return families


def load_all(directory: Path = DERIVATIONS_DIR) -> dict[str, list[Loss]]:
    """The losses of every ``*.py`` derivation in ``directory``, keyed by family, in name order."""
    return {name: list(f.losses) for name, f in load_families(directory).items()}
