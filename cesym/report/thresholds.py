r"""Where a family's naive forms break: thresholds derived from its own expressions, per dtype,
each confirmed by its operation evaluated in that dtype on either side.

The naive value and gradient (the definition in elementary functions, as SymPy differentiates
it) are searched for the operations that overflow, underflow or round an argument away at
finite inputs, with the input they act on:

* ``exp(k·x)``: overflows to inf where ``k·x > ln(max)``; its result leaves the normal range
  (digits lost, then 0) where ``k·x < ln(tiny)`` (tiny: the smallest normal number);
* ``1 + exp(k·x)``: rounds to 1 where ``exp(k·x) < u`` (u = eps/2, the unit roundoff), i.e.
  ``k·x < ln u``: ``σ(x) = 1`` and ``log σ(x) = 0`` exactly, whatever x;
* ``log(1 - x)``: ``1 - x`` rounds to 1 where ``0 < x < u/2`` (log(1 - x) = 0, not -x); and
  ``log(1 + x)`` where ``0 < x < u`` (the floats above 1 are twice as far apart);
* ``b**n`` (integer n >= 2, b an input or a difference of two): overflows where
  ``|b| > max^(1/n)``, and goes below the normals (digits lost) where ``|b| < tiny^(1/n)``;
* ``cosh(x)``: overflows where ``|x| > acosh(max)``;
* ``1/x``: overflows where ``0 < |x| < 1/max``.

The threshold is the exact solution (SymPy, 30 digits) rounded to a double; its confirmation is
the operation computed in the dtype at the threshold moved outward and inward by 1 % (or by a
factor 2 for the thresholds that are themselves powers), reported as the class of the result
(inf, 0, 1, finite, exact), which does not depend on the CPU's last bit. A threshold whose
operation does not break just beyond it, or breaks just inside, is reported unconfirmed
(:func:`confirm` returns False), never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..define.primitives import Elem, to_elementary

__all__ = ["Threshold", "family_thresholds", "confirm"]

DTYPES = (np.float32, np.float64)


@dataclass(frozen=True)
class Threshold:
    """One operation of a naive form and where, on one input, it breaks."""

    operation: str  # as it appears: "exp(-x)", "(p - y)**2"
    breaks: str  # what happens: "overflows to inf"
    side: str  # "above", "below", "|·| above", "|·| below"
    on: str  # the quantity the threshold bounds: "x", "|p - y|"
    kind: str  # exp_over, exp_under, one_plus_exp, one_minus, one_plus, pow_over, pow_under, cosh_over, recip_over
    k: float = 1.0  # the factor of exp(k·x)
    n: int = 2  # the exponent of b**n

    def value(self, dtype) -> float:
        """The threshold on :attr:`on` in ``dtype``, from the exact solution."""
        fi = np.finfo(dtype)
        big, tiny = sp.Float(float(fi.max), 30), sp.Float(float(fi.smallest_normal), 30)
        u = sp.Float(float(fi.eps), 30) / 2
        k = sp.Float(self.k, 30)
        if self.kind == "exp_over":
            return float(sp.log(big) / k)
        if self.kind == "exp_under":
            return float(sp.log(tiny) / k)
        if self.kind == "one_plus_exp":
            return float(sp.log(u) / k)
        if self.kind == "one_minus":  # 1 - x: the floats below 1 are u apart
            return float(u / 2)
        if self.kind == "one_plus":  # 1 + x: the floats above 1 are 2u apart
            return float(u)
        if self.kind == "pow_over":
            return float(big ** (sp.Integer(1) / self.n))
        if self.kind == "pow_under":
            return float(tiny ** (sp.Integer(1) / self.n))
        if self.kind == "cosh_over":
            return float(sp.acosh(big))
        if self.kind == "recip_over":
            return float(1 / big)
        raise ValueError(f"kind: unknown threshold kind {self.kind!r}")

    def condition(self, dtype) -> str:
        """The inputs where it breaks, as text: ``x > 88.7228``, ``0 < |p| < 2.93874e-39``."""
        t = self.value(dtype)
        low = "0 < " if self.kind in ("recip_over", "pow_under", "one_minus", "one_plus") else ""
        return f"{low}{self.on} {'>' if self.side.endswith('above') else '<'} {t:.6g}"


def _linear(arg: sp.Basic) -> tuple[float, Elem] | None:
    """``k·x`` with x an input and k a number: (k, x)."""
    c, rest = arg.as_coeff_Mul()
    if isinstance(rest, Elem) and c.is_number and c != 0:
        return float(c), rest
    return None


def _base(b: sp.Basic) -> str | None:
    """An input, or the difference of two (``p - y``), as text; else None."""
    if isinstance(b, Elem):
        return str(b)
    if isinstance(b, sp.Add) and len(b.args) == 2 and all(isinstance(a, Elem) or (-a).is_Symbol for a in b.args):
        return sp.sstr(b)
    return None


def _exp_text(k: float, x: Elem) -> str:
    kx = sp.sstr(sp.Float(k, 6).round(6) * x) if abs(k) != 1 else ("" if k > 0 else "-") + str(x)
    return f"exp({kx})"


def _find(expr: sp.Basic) -> Iterable[Threshold]:
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.exp):
            lin = _linear(node.args[0])
            if lin is None:
                continue
            k, x = lin
            op = _exp_text(k, x)
            over, under = ("above", "below") if k > 0 else ("below", "above")
            yield Threshold(op, "overflows to inf", over, str(x), "exp_over", k)
            yield Threshold(op, "falls below the normal numbers (digits lost, then 0)", under, str(x), "exp_under", k)
        elif isinstance(node, sp.Add) and sp.S.One in node.args and len(node.args) == 2:
            other = node.args[1] if node.args[0] == sp.S.One else node.args[0]
            if isinstance(other, sp.exp) and (lin := _linear(other.args[0])) is not None:
                k, x = lin
                yield Threshold(f"1 + {_exp_text(k, x)}", "rounds to 1 (σ = 1, log σ = 0 exactly)",
                                "below" if k > 0 else "above", str(x), "one_plus_exp", k)
        elif isinstance(node, sp.log) and isinstance(node.args[0], sp.Add):
            a = node.args[0]
            if len(a.args) == 2 and sp.S.One in a.args:
                other = a.args[1] if a.args[0] == sp.S.One else a.args[0]
                for x, sign, kind in ((-other, "-", "one_minus"), (other, "+", "one_plus")):
                    if isinstance(x, Elem):
                        yield Threshold(f"log(1 {sign} {x})", f"1 {sign} {x} rounds to 1 (the log is 0, not {sign.strip('+')}{x})",
                                        "below", str(x), kind)
        elif isinstance(node, sp.Pow) and node.exp.is_Integer:
            n = int(node.exp)
            b = _base(node.base)
            if b is None:
                continue
            if n >= 2:
                on = f"|{b}|"
                op = f"({b})**{n}" if not isinstance(node.base, Elem) else f"{b}**{n}"
                yield Threshold(op, "overflows to inf", "|·| above", on, "pow_over", n=n)
                yield Threshold(op, "falls below the normal numbers (digits lost, then 0)", "|·| below", on, "pow_under", n=n)
            elif n == -1 and isinstance(node.base, Elem):
                yield Threshold(f"1/{b}", "overflows to inf", "|·| below", f"|{b}|", "recip_over")
        elif isinstance(node, sp.Pow) and node.exp == -1 and isinstance(node.base, sp.Abs) and isinstance(node.base.args[0], Elem):
            b = node.base.args[0]
            yield Threshold(f"1/|{b}|", "overflows to inf", "|·| below", f"|{b}|", "recip_over")
        elif isinstance(node, sp.cosh) and (b := _base(node.args[0])) is not None:
            yield Threshold(f"cosh({b})", "overflows to inf", "|·| above", f"|{b}|", "cosh_over")


def family_thresholds(exprs: Sequence[sp.Basic], weights: dict | None = None) -> list[Threshold]:
    """The thresholds of every operation of ``exprs`` (naive values and gradients; label weights
    written out with ``weights``), each once, in the order first met."""
    seen: dict[tuple, Threshold] = {}
    for e in exprs:
        if e is None:
            continue
        e = to_elementary(e.xreplace(weights or {}), keep=())
        for t in _find(e):
            seen.setdefault((t.operation, t.kind), t)
    return list(seen.values())


# --- confirmation in the dtype ---------------------------------------------------------------------


def _probe(t: Threshold, dtype) -> tuple[Callable[[float], float], float, float]:
    """(the operation in ``dtype``, an input beyond the threshold, one inside)."""
    dt = np.dtype(dtype).type
    v = t.value(dtype)
    if t.kind in ("exp_over", "exp_under"):
        k = dt(t.k)
        f = lambda x: np.exp(k * dt(x))  # noqa: E731
    elif t.kind == "one_plus_exp":
        k = dt(t.k)
        f = lambda x: dt(1) + np.exp(k * dt(x))  # noqa: E731
    elif t.kind == "one_minus":
        f = lambda x: dt(1) - dt(x)  # noqa: E731
    elif t.kind == "one_plus":
        f = lambda x: dt(1) + dt(x)  # noqa: E731
    elif t.kind in ("pow_over", "pow_under"):
        f = lambda x: dt(x) ** t.n  # noqa: E731
    elif t.kind == "cosh_over":
        f = lambda x: np.cosh(dt(x))  # noqa: E731
    else:  # recip_over
        f = lambda x: dt(1) / dt(x)  # noqa: E731
    if t.kind in ("pow_over", "pow_under", "recip_over", "one_minus", "one_plus"):
        out, inn = (v * 2, v / 2) if t.side.endswith("above") else (v / 2, v * 2)
    else:  # v is an input value (a logarithm): move it by 1 % of its size
        step = 0.01 * abs(v)
        out, inn = (v + step, v - step) if t.side == "above" or t.side == "|·| above" else (v - step, v + step)
    return f, out, inn


def _class(y: float, t: Threshold) -> str:
    if np.isinf(y):
        return "inf"
    if y == 0:
        return "0"
    if t.kind in ("one_plus_exp", "one_minus", "one_plus"):
        return "1" if y == 1 else "≠ 1"
    if abs(y) < np.finfo(np.asarray(y).dtype).smallest_normal:
        return "subnormal"
    return "finite"


#: What the operation gives beyond its threshold, by kind (inside it gives anything else).
_BROKEN = {
    "exp_over": {"inf"}, "exp_under": {"subnormal", "0"}, "one_plus_exp": {"1"}, "one_minus": {"1"}, "one_plus": {"1"},
    "pow_over": {"inf"}, "pow_under": {"subnormal", "0"}, "cosh_over": {"inf"}, "recip_over": {"inf"},
}


def confirm(t: Threshold, dtype) -> tuple[bool, str]:
    """Whether the operation, computed in ``dtype``, breaks just beyond the threshold and not
    just inside it; and the measurement as text."""
    f, out, inn = _probe(t, dtype)
    with np.errstate(all="ignore"):
        a, b = _class(f(out), t), _class(f(inn), t)
    ok = a in _BROKEN[t.kind] and b not in _BROKEN[t.kind]
    return ok, f"{t.on} = {out:.4g}: {a}; {inn:.4g}: {b}"
