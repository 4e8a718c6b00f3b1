"""Which public kernel computes which derived loss, and how to call it on a batch of rows.

Used by the accuracy checks (tests, ``cesym verify``), the bench and the reports: each
:class:`KernelCase` is one variant of a declared public function (:class:`cesym.define.declare.Public`,
as the generated modules hold it in ``PUBLIC``) with the keyword values that select it, the loss
(``family.variant``) it computes, its label kind, prediction domain, limit rule and reduction,
and how to call it on rows along the last axis. Nothing here knows a loss by name.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace

import numpy as np

__all__ = ["KernelCase", "CASES", "cases", "load_cases", "case", "label_kinds", "one_hot"]


@dataclass(frozen=True)
class KernelCase:
    """One public kernel in one configuration (one declared variant)."""

    kernel: str  # public name
    loss: str  # Loss.name of the definition it computes
    label_kind: str  # cesym.define.declare.LABEL_KINDS
    domain: str  # cesym.define.declare.DOMAINS: the predictions'
    limits: str | None  # cesym.define.declare.LIMITS
    reduction: str  # "row", "element" or "batch"
    keywords: dict = field(default_factory=dict)  # fixed: the flags selecting the variant
    params: tuple = ()  # the real keywords: ((name, default, (lo, hi) or None), ...)
    keyword_only: bool = False  # tf.nn style: labels=, logits=
    has_axis: bool = False  # takes axis=
    args: tuple[str, ...] = ("y_true", "y_pred")  # the label and prediction arguments' names
    keras: dict | None = None  # the declared Keras counterpart (cesym.define.declare.Keras as data), or None
    module: ModuleType | None = field(default=None, compare=False, repr=False)  # the kernels' namespace
    definition: object = field(default=None, compare=False, repr=False)  # its Loss, when not from derivations/
    #: where the definition is real in the label (cesym.derive.label_domain), or None: any label
    label_domain: dict | None = field(default=None, compare=False, repr=False)

    @property
    def id(self) -> str:
        kw = ",".join(f"{k}={v}" for k, v in self.keywords.items())
        return f"{self.kernel}[{kw}]" if kw else self.kernel

    @property
    def call_kw(self) -> dict:
        """The keywords a call needs: the flags selecting the variant and each parameter without
        a default (at the middle of its range, or 1)."""
        kw = {name: ((rng[0] + rng[1]) / 2 if rng else 1.0) for name, default, rng in self.params if default is None}
        kw.update(self.keywords)
        return kw

    @property
    def labels(self) -> str:
        """``"dense"``, ``"sparse"`` (class indices) or ``"none"``."""
        return {"index": "sparse", "none": "none"}.get(self.label_kind, "dense")

    @property
    def inputs(self) -> str:
        """``"probs"`` (probabilities), ``"logits"`` (a sigmoid's or softmax's input), ``"positive"`` (also numbers >= -1, shifted) or ``"real"``."""
        if self.domain in ("unit", "simplex"):
            return "probs"
        if self.domain in ("positive", "log1p"):
            return "positive"
        return "logits" if self.limits in ("sigmoid", "softmax") else "real"

    @property
    def elementwise(self) -> bool:
        return self.reduction == "element"

    @property
    def nn_keywords(self) -> bool:
        return self.keyword_only

    @property
    def smoothing(self) -> bool:
        """Has parameters with a declared range (sampled over it for the "smoothed" label kind)."""
        return any(r is not None for _, _, r in self.params)

    def call(self, labels, pred, params: dict, grad: bool | str = False, module=None):
        """Call the kernel (value, or gradient with ``grad``, or both with ``grad="both"``: the
        ``_value_and_grad`` function) on rows along the last axis.

        ``module``: where the function is looked up (default :mod:`cesym.kernels`; the verifier
        passes :mod:`cesym.kernels.naive` for the naive forms). The checks sample one-class rows
        and logits in [0, 1] on purpose: the kernels' misuse warnings are silenced here (the
        numbers are what is checked).
        """
        from cesym import kernels

        if module is not None and self.module is not None and getattr(module, "__name__", "") == "cesym.kernels.naive":
            module = SimpleNamespace(**self.module.NAIVE)  # the naive forms of a module outside cesym.kernels
        suffix = "_value_and_grad" if grad == "both" else "_grad" if grad else ""
        fn: Callable = getattr(module or self.module or kernels, self.kernel + suffix)
        kw = self.call_kw
        kw.update(params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kernels.SingleClassWarning)
            warnings.simplefilter("ignore", kernels.ProbabilitiesAsLogitsWarning)
            if self.keyword_only:
                return fn(**{self.args[0]: labels, self.args[-1]: pred}, **kw)
            if self.labels == "none":
                return fn(pred, **kw)
            return fn(labels, pred, **kw)


def cases(modules: Iterable[ModuleType], own: bool = False, definitions: dict | None = None) -> list[KernelCase]:
    """One case per declared variant of every public function of the generated ``modules``
    (their ``PUBLIC``), in module order. ``own``: the functions are called from each module
    itself (a module generated from another derivations directory) rather than from
    :mod:`cesym.kernels`; ``definitions``: ``{family.variant: Loss}`` for such modules."""
    out = []
    for module in modules:
        family = module.__name__.rsplit(".", 1)[-1]
        for pub in getattr(module, "PUBLIC", ()):
            params = tuple((k["name"], k["default"], tuple(k["range"]) if k["range"] else None) for k in pub["keywords"] if k["kind"] == "real")
            for v in pub["variants"]:
                c = KernelCase(
                    kernel=pub["name"], loss=f"{family}.{v['loss']}", label_kind=pub["labels"], domain=v["domain"],
                    limits=v["limits"], reduction=pub["reduction"], keywords=dict(v["when"]), params=params,
                    keyword_only=pub["keyword_only"], has_axis=any(k["kind"] == "axis" for k in pub["keywords"]),
                    args=tuple(pub["args"]), keras=pub["keras"], module=module if own else None,
                    definition=(definitions or {}).get(f"{family}.{v['loss']}"),
                    label_domain=module.CORES[v["loss"]].get("label_domain"),
                )
                out.append(c)
    return out


def load_cases(directory) -> list[KernelCase]:
    """The cases of the derivation files in ``directory`` (a user's own losses): each file is
    rendered and checked as ``cesym generate`` does (:func:`cesym.generate.codegen.render_all`, raising
    :class:`cesym.define.loss.DerivationError`), executed as a module in memory, and its declared
    functions called from it."""
    import types

    from cesym.define.loss import load_families
    from cesym.generate.codegen import render_all

    texts = render_all(directory)
    families = load_families(directory)
    modules = []
    for name in sorted(families):
        module = types.ModuleType(f"cesym_user_kernels.{name}")
        module.__file__ = str(families[name].path)
        exec(compile(texts[f"{name}.py"], f"<generated {name}.py>", "exec"), module.__dict__)  # noqa: S102 - our rendering
        modules.append(module)
    definitions = {l.name: l for f in families.values() for l in f.losses}
    return cases(modules, own=True, definitions=definitions)


def _shipped() -> list[KernelCase]:
    from cesym.kernels import _generated

    return cases(getattr(_generated, m) for m in _generated.__all__)


CASES: list[KernelCase] = _shipped()


def label_kinds(case: KernelCase) -> list[tuple[str, bool, bool]]:
    """The label kinds a case is checked with: (name, soft, smoothing).

    Hard labels always; soft labels for dense labels; label smoothing where the kernel has it.
    """
    kinds = [("hard", False, False)]
    if case.label_kind in ("binary", "distribution"):
        kinds.append(("soft", True, False))
    if case.smoothing:
        kinds.append(("smoothed", False, True))
    return kinds


def case(kernel: str, **keywords) -> KernelCase:
    """The case of ``kernel`` whose fixed keywords include ``keywords``."""
    for c in CASES:
        if c.kernel == kernel and all(c.keywords.get(k) == v for k, v in keywords.items()):
            return c
    raise KeyError(f"no kernel case {kernel} {keywords}")


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """Integer labels -> rows of 0/1 (for the reference, which takes dense rows)."""
    return (np.asarray(labels)[..., None] == np.arange(n)).astype(np.float64)
