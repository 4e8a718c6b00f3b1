"""Declare: what a loss offers its users, written next to its mathematics in ``derivations/``.

A derivation file lists its mathematics in ``LOSSES`` (:class:`cesym.define.loss.Loss`) and its public
functions in ``PUBLIC``, a list of :class:`Public`. Everything after generation is built from
these declarations, never from a loss's name: the public ``<name>``, ``<name>_grad`` and
``<name>_value_and_grad`` with their argument checks and docstrings (:mod:`cesym.kernels._api`),
the naive forms, verify's cases and samplers, the bench rows and the reports.

A declaration is plain data (strings, numbers, tuples): ``cesym generate`` writes it into the
generated module as ``PUBLIC``, which the NumPy-only kernels read at import.

Vocabulary:

* label kinds: ``"binary"`` (a label per element, 0/1 or soft in [0, 1]), ``"distribution"``
  (a label row over the classes: one-hot, multi-hot or soft), ``"index"`` (one integer class
  per row), ``"real"`` (a regression target per element: any number, ±inf taken as a limit),
  ``"count"`` (a non-negative target per element: counts, rates; +inf a limit), ``"sign"`` (a
  class label per element as -1 or +1, the margin losses' convention; the kernels take any
  real number, ±inf as a limit), ``"none"`` (no labels);
* prediction domains: ``"real"`` (logits, activations: any finite number), ``"unit"``
  (probabilities in [0, 1], element by element), ``"simplex"`` (non-negative rows with a
  positive sum, renormalised to sum 1), ``"positive"`` (rates, scales: numbers >= 0, 0 the
  edge where a log is infinite), ``"log1p"`` (numbers >= -1, the domain of
  log(1 + x): -1 the edge where it is infinite);
* limit rules at ±inf inputs (:mod:`cesym.kernels._limits`), by the form of the stable value:
  ``"sigmoid"`` (:math:`\\sum t\\,\\mathrm{softplus}(-x) + u\\,\\mathrm{softplus}(x)`, weights
  (t, u) in their declared order), ``"softmax"`` (:math:`\\sum_c t_c(\\operatorname{lse} z - z_c)`),
  ``"renormalised"`` (the same with z = log p), ``"edges"`` (the core's own values at the
  domain's edges; NaN rows stay NaN), ``"squares"`` (λ·Σh²/N), or None (no rule: a row holding
  NaN is NaN throughout, and at ±inf the core's IEEE result stands: ``cesym verify`` says where
  that is not the limit);
* reductions: ``"row"`` (one value per row along ``axis``, or along the last axis when there is
  no ``axis`` keyword), ``"element"`` (one value per element), ``"batch"`` (one value for the
  whole batch, samples along axis 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Keyword", "Variant", "Keras", "Public", "AXIS", "LABEL_KINDS", "DOMAINS", "LIMITS", "REDUCTIONS"]

LABEL_KINDS = ("binary", "distribution", "index", "real", "count", "sign", "none")
DOMAINS = ("real", "unit", "simplex", "positive", "log1p")
LIMITS = ("sigmoid", "softmax", "renormalised", "edges", "squares", None)
REDUCTIONS = ("row", "element", "batch")
KEYWORD_KINDS = ("flag", "real", "axis", "ignore_class")


@dataclass(frozen=True)
class Keyword:
    """A keyword argument of the public functions.

    ``kind``: ``"flag"`` (True or False: selects a variant), ``"real"`` (a finite number, in
    ``range`` when given: a parameter of the mathematics, passed to the kernel under its
    name), ``"axis"`` (the class axis), ``"ignore_class"`` (an integer class whose rows are
    ignored, or None).
    """

    name: str
    default: Any
    kind: Literal["flag", "real", "axis", "ignore_class"] = "real"
    range: tuple[float, float] | None = None
    doc: str = ""


#: The class axis keyword of the Keras losses (``axis=-1``).
AXIS = Keyword("axis", -1, "axis", doc="the class axis, reduced over")


@dataclass(frozen=True)
class Variant:
    """One kernel of a public function: the ``Loss.variant`` it computes, the keyword values that
    select it (``{"from_logits": True}``), its prediction domain and its limit rule."""

    loss: str
    when: dict[str, Any] = field(default_factory=dict)
    domain: Literal["real", "unit", "simplex", "positive", "log1p"] = "real"
    limits: str | None = None


@dataclass(frozen=True)
class Keras:
    """The Keras (or TensorFlow) counterpart: dotted names, e.g. ``keras.losses.binary_crossentropy``;
    ``keywords``: what Keras is called with beside the kernel's own keywords to compute the same
    thing (``{"axis": -1}`` where Keras's default reduces the whole batch). ``metrics``: Keras's
    metric forms of the loss: functions (the loss function itself under ``keras.metrics``) and
    classes, whose ``result()`` is the weighted mean of the per-sample values, or what
    ``metric_of`` says: ``"sqrt(mean)"`` (the root of the mean over the elements, as
    ``RootMeanSquaredError``), ``"-mean"`` (of the negated values: the cosine similarity metric
    of the cosine loss). ``one_hot_as_given``: the function one-hots class-index labels as it
    receives them, without squeezing a trailing axis of 1 first (Keras's sparse cross-entropy
    squeezes; its generalized cross-entropy does not): its loss class, which expands (B,) labels
    to (B, 1) against (B, 1) predictions, then pairs every label row with every prediction row
    (``cesym.keras.forms`` models it)."""

    function: str | None = None
    loss_class: str | None = None
    metrics: tuple[str, ...] = ()
    keywords: dict[str, Any] = field(default_factory=dict)
    metric_of: dict[str, str] = field(default_factory=dict)
    one_hot_as_given: bool = False


@dataclass(frozen=True)
class Public:
    """One public loss function (and its ``_grad``, ``_value_and_grad``).

    Attributes:
        name: the public name (a Python identifier).
        summary: the first line of its docstring.
        variants: the kernels, selected by keyword values (the first whose ``when`` all hold).
        labels: the label kind (``"none"``: the function takes the predictions only).
        args: the names of the label and prediction arguments (the prediction alone without
            labels), e.g. ``("y_true", "y_pred")`` or ``("labels", "logits")``.
        keyword_only: every argument keyword-only (the ``tf.nn`` convention).
        keywords: the keyword arguments, in signature order.
        reduction: ``"row"``, ``"element"`` or ``"batch"`` (see the module docstring).
        exact_label_shape: class-index labels of exactly the predictions' shape without the class
            axis (``tf.nn``); otherwise a trailing 1 is accepted too (Keras).
        keras: the Keras counterpart, or None (verified and reported without a Keras section).
        doc: more docstring: conventions, the limits at ±inf, examples.
    """

    name: str
    summary: str
    variants: tuple[Variant, ...]
    labels: Literal["binary", "distribution", "index", "real", "count", "sign", "none"] = "none"
    args: tuple[str, ...] = ("y_true", "y_pred")
    keyword_only: bool = False
    keywords: tuple[Keyword, ...] = ()
    reduction: Literal["row", "element", "batch"] = "row"
    exact_label_shape: bool = False
    keras: Keras | None = None
    doc: str = ""

    def validate(self, variants: set[str], params: dict[str, set[str]]) -> list[str]:
        """Problems with this declaration, given the file's ``Loss.variant`` names and each
        variant's parameter names (empty: none)."""
        errs = []
        if not self.name.isidentifier():
            errs.append(f"public name {self.name!r} is not a Python identifier")
        if not self.variants:
            errs.append(f"{self.name}: no variants")
        if self.labels not in LABEL_KINDS:
            errs.append(f"{self.name}: labels must be one of {LABEL_KINDS}")
        if self.reduction not in REDUCTIONS:
            errs.append(f"{self.name}: reduction must be one of {REDUCTIONS}")
        n_args = 1 if self.labels == "none" else 2
        if len(self.args) != n_args or not all(a.isidentifier() for a in self.args):
            errs.append(f"{self.name}: args must name {n_args} argument(s)")
        names = [k.name for k in self.keywords]
        if len(set(names)) != len(names) or set(names) & set(self.args):
            errs.append(f"{self.name}: keyword names must be distinct from each other and from args")
        for k in self.keywords:
            if k.kind not in KEYWORD_KINDS:
                errs.append(f"{self.name}: keyword {k.name}: kind must be one of {KEYWORD_KINDS}")
            if k.kind == "ignore_class" and self.labels != "index":
                errs.append(f"{self.name}: ignore_class needs class-index labels")
        if any(k.kind == "axis" for k in self.keywords) and self.reduction != "row":
            errs.append(f"{self.name}: an axis keyword needs reduction 'row'")
        kw = {k.name: k for k in self.keywords}
        for v in self.variants:
            if v.loss not in variants:
                errs.append(f"{self.name}: variant {v.loss!r} is not in LOSSES")
                continue
            if v.domain not in DOMAINS:
                errs.append(f"{self.name}: variant {v.loss}: domain must be one of {DOMAINS}")
            if v.limits not in LIMITS:
                errs.append(f"{self.name}: variant {v.loss}: limits must be one of {LIMITS}")
            for key in v.when:
                if key not in kw or kw[key].kind != "flag":
                    errs.append(f"{self.name}: variant {v.loss} is selected by {key!r}, which is not a flag keyword")
            missing = params.get(v.loss, set()) - {k.name for k in self.keywords if k.kind == "real"}
            if missing:
                errs.append(f"{self.name}: variant {v.loss} needs keyword(s) {sorted(missing)} for its parameters")
        return errs

    def as_data(self) -> dict:
        """The declaration as plain data (what the generated module holds)."""
        return asdict(self)
