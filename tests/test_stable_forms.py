"""Issue 10, part 3: stable forms found for the shapes people write, and generate checking them.

(a) each rewrite rule fires on its shape (and on the variants SymPy prints it as) and is an
    identity (``check_equivalent``: both sides in 60 digits at random rows), and keeps off the
    shapes it must leave alone;
(b) the issue's three losses, written by hand in a derivations directory of their own, generate
    kernels whose value and gradient at the issue's rows are within the accuracy contract of a
    50-digit mpmath reference, where their naive forms give inf or NaN;
(c) one more loss per listed shape, likewise, against the interval reference;
(d) a loss that no rule makes stable fails ``cesym generate`` with one line (exit 2) naming the
    loss, the input and the subexpression, and nothing is written.

Bounds: the contract's, ``4 + 4κ`` ulps for a value and ``8 + 4κ`` for a gradient element (κ from
the reference, ``cesym.verify.contract``): the stable forms are held to what the shipped kernels
promise, not to the edge check's relaxed bound.
"""

from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from cesym.rewrite import rules as R
from cesym.define.loss import DerivationError, load_derivation
from cesym.derive.gradients import derive
from cesym.generate.edges import check_edges, load_module
from cesym.generate.codegen import generate
from cesym.define.primitives import (
    LogRatio,
    InfOr,
    NanOr,
    NegLogNormalized,
    NormalizedRest,
    SoftmaxRest,
    nan_or_forms,
    Elem,
    Log1mexp,
    LogCosh,
    Hypot1,
    Hypot1m1,
    HypotShare,
    Log1pSquare,
    LogExpm1,
    LogWeight,
    LogSumExp,
    NegLogSoftmax,
    Norm2,
    Pow1p,
    Expm1mx,
    Pow1pm1,
    Powm1,
    RestSum,
    RowMax,
    RowSum,
    MaxMinusSum,
    Log1pDiff,
    Scaled,
    ScaledExp,
    Sigmoid,
    SigmoidDiff,
    Softplus,
    SumSquares,
    XMul,
)
from cesym.verify.reference import RowReference
from cesym.verify.ulps import ulp_error

ROOT = Path(__file__).resolve().parent.parent

x, y, z, p, t = Elem("x"), Elem("y"), Elem("z"), Elem("p"), Elem("t")
g, q = sp.Symbol("g", real=True), sp.Symbol("q", real=True)
gn = sp.Symbol("gn", nonnegative=True)
_delta = sp.Symbol("delta", positive=True)
E = sp.exp


# --- (a) every rule fires on its shapes and is an identity -------------------------------------------

def _predicting(rule: R.Rule, x: Elem) -> R.Rule:
    """``rule`` applied with ``x`` as the loss's prediction (:func:`cesym.rewrite.rules.prediction`)."""

    def apply(expr):
        with R.prediction(x):
            return rule(expr)

    return R.Rule(rule.name, rule.why, apply)


FIRES = [
    # (rule, shape, what the result must hold)
    (R.SIGMOID, 1 / (1 + E(-x)), Sigmoid(x)),
    (R.SIGMOID, E(x) / (1 + E(x)), Sigmoid(x)),
    (R.SIGMOID, E(-x) / (1 + E(-x)), Sigmoid(-x)),
    (R.SIGMOID, 1 / (E(x) + 1), Sigmoid(-x)),
    (R.SIGMOID, 1 - 1 / (1 + E(-x)), Sigmoid(x)),
    (R.SIGMOID, y / (2 + E(-x)), Sigmoid),
    (R.SIGMOID, E(x) / (E(x) + E(y)), Sigmoid(x - y)),
    (R.LOG1P_SQUARE, sp.log(1 + (x - y) ** 2 / sp.Symbol("c", positive=True) ** 2), Log1pSquare),
    # the Geman–McClure loss e²/(e² + c²): e² overflows past 1.3e154 (inf/inf)
    (R.SQUARE_SHARE, (x - y) ** 2 / ((x - y) ** 2 + sp.Symbol("c", positive=True) ** 2), HypotShare),
    # its gradient written by SymPy: two terms that cancel for |e| far above c, one over one denominator
    (R.CANCELLING_TERMS, 2 * (x - y) / ((x - y) ** 2 + 1) - 2 * (x - y) ** 3 / ((x - y) ** 2 + 1) ** 2, x - y),
    (R.LOG1P_SQUARE, log1p(4 * x**2), Log1pSquare(2 * x)),
    (R.HYPOT, sp.sqrt(1 + x**2), Hypot1(x)),
    (R.HYPOT, sp.Symbol("d", positive=True) ** 2 * (sp.sqrt(1 + (x - y) ** 2 / sp.Symbol("d", positive=True) ** 2) - 1), Hypot1m1),
    (R.HYPOT, sp.sqrt(4 * x**2 + 1) - 1, Hypot1m1(2 * x)),
    (R.TANH_SIGMOID, (1 + sp.tanh(x / 2)) / 2, Sigmoid(x)),
    (R.TANH_SIGMOID, 1 - (1 + sp.tanh(x / 2)) / 2, Sigmoid(-x)),
    (R.TANH_SIGMOID, y * (1 - sp.tanh(x)) + 3, Sigmoid(-2 * x)),
    (R.ONE_MINUS_SIGMOID, 1 - Sigmoid(x), Sigmoid(-x)),
    # 1 - p_t of a poly-1 loss: the label weights sum to the constant
    (R.ONE_MINUS_SIGMOID, 1 - y * Sigmoid(x) - (1 - y) * Sigmoid(-x), y * Sigmoid(-x) + (1 - y) * Sigmoid(x)),
    (R.ONE_MINUS_SIGMOID, sp.expand(g * (1 - y * Sigmoid(x) - (1 - y) * Sigmoid(-x))), Sigmoid(-x)),
    (R.POW_SIGMOID, Sigmoid(x) ** g, Softplus(-x)),
    (R.LOG_SPLIT, sp.log(E(y - x) / (1 + E(y - x)) ** 2), sp.log(1 + E(y - x))),
    (R.LOG_SPLIT, sp.log(RowSum(E(z)) / sp.Symbol("C", positive=True, integer=True)), sp.log(RowSum(E(z)))),
    (R.XLOGY, y * sp.log(y), XMul(y, sp.log(y))),
    (R.XLOGY, y * sp.log(y / p), XMul(y, LogRatio(y, p))),
    (R.XLOGY, -y * sp.log(p / y), LogRatio(y, p)),
    # a mixture's constant factor taken onto the numerator: (p + y)/2 underflows where 2p does not
    (R.XLOGY, p * sp.log(p / (p / 2 + y / 2)), LogRatio(2 * p, p + y)),
    (R.LOG_ADD_EXP, sp.log(1 + E(x)), Softplus(x)),
    (R.LOG_ADD_EXP, sp.log(E(x) + 1), Softplus(x)),
    (R.LOG_ADD_EXP, log1p(E(x)), Softplus(x)),
    (R.LOG_ADD_EXP, sp.log(E(x) + E(y)), Softplus),
    (R.LOG_ADD_EXP, sp.log(1 + E(x) + 2 * E(y)), Softplus),
    (R.LOG1MEXP, sp.log(1 - E(-x)), Log1mexp(-x)),
    (R.LOG1MEXP, log1p(-E(-x)), Log1mexp(-x)),
    (R.LOG1MEXP, sp.log(-expm1(-x)), Log1mexp(-x)),
    (R.LOG1MEXP, sp.log(2 - E(-x)), Log1mexp),
    (R.LOG_SUM_EXP, sp.log(RowSum(E(z))), LogSumExp(z)),
    (R.LSE_WEIGHTS, sp.log(RowSum(y * E(z))), LogSumExp),
    (R.LSE_WEIGHTS, sp.log(RowSum(p * E(2 * z - x))), LogSumExp),
    (R.SHIFT_EXP_WEIGHTED, E(z + LogWeight(y)) / RowSum(E(z + LogWeight(y))), RowMax(z + LogWeight(y))),
    (R.LOG_SOFTMAX_DIFFERENCE, y * (z - LogSumExp(z)), NegLogSoftmax(z)),
    (R.LOG_SOFTMAX_DIFFERENCE, LogSumExp(z) - z, NegLogSoftmax(z)),
    (R.LSE_WEIGHTED, LogSumExp(z) - RowSum(y * z), NegLogSoftmax(z)),
    (R.LSE_WEIGHTED, 2 * LogSumExp(z) - 3 * RowSum(y * z), NegLogSoftmax(z)),
    (R.POW1P, (1 - p) ** g, Pow1p(-p, g)),
    (R.POW1P, (1 + p) ** sp.Rational(1, 2), Pow1p),
    (R.POWM1, 1 - p**q, Powm1(p, q)),
    (R.POWM1, y * (p**q - 1), Powm1(p, q)),
    (R.POWM1, 1 - (E(x) / RowSum(E(x))) ** q, NegLogSoftmax(x)),  # a generalised CE on logits: from the log-share
    (R.POWM1, 1 - (1 - (x - y) ** 2) ** 3, Pow1pm1),  # Tukey's biweight: an integer power of 1 + x
    (R.EXPM1MX, (E(x) + y**2 - 1 - x) / 2, Expm1mx(x)),  # a VAE's KL term in the log variance
    (R.EXPM1MX, 3 * expm1(2 * x) - 6 * x, Expm1mx(2 * x)),
    (R.LOG_COSH, sp.log(sp.cosh(x - y)), LogCosh(x - y)),
    (R.NORM2, sp.sqrt(SumSquares(x - y)), Norm2(x - y)),
    (R.NORM2, sp.sqrt(g * SumSquares(x)), Norm2(x)),
    (R.NORM2, SumSquares(x) ** sp.Rational(-3, 2), Norm2(x)),
    (R.LOG1P_SUM, sp.log(1 + (x - y) ** 2), log1p),
    # a Charbonnier loss √(e² + ε²) and a Student-t's log(1 + e²/ν): the positive constant inside
    (R.HYPOT, sp.sqrt((x - y) ** 2 + sp.Symbol("eps", positive=True) ** 2), Hypot1),
    (R.HYPOT, sp.sqrt(2 + x**2), Hypot1(sp.sqrt(2) * x / 2)),
    (R.LOG1P_SQUARE, sp.log(1 + (x - y) ** 2 / sp.Symbol("nu", positive=True)), Log1pSquare),
    # Barron's general loss: a power of 1 + u² (u² over a non-negative |α - 2|)
    (R.POW1P_SQUARE, (1 + (x - y) ** 2 / sp.Abs(g - 2)) ** (g / 2), Log1pSquare),
    (R.SOFTPLUS_WEIGHTED, Softplus(x) - y * x, Softplus(-x)),
    # a term affine in u up to a part free of u's elements (a negative binomial's -y·s beside
    # softplus(s - log r)), in a sum with its products multiplied out
    (R.SOFTPLUS_WEIGHTED, -y * x + (y + sp.Symbol("r", positive=True)) * (sp.log(sp.Symbol("r", positive=True)) + Softplus(x - sp.log(sp.Symbol("r", positive=True)))), Softplus(sp.log(sp.Symbol("r", positive=True)) - x)),
    (R.SOFTPLUS_WEIGHTED, 2 * Softplus(x - z) - 3 * y * (x - z), Softplus(z - x)),
    (R.EXPM1, y * (E(x) - 1), expm1(x)),
    (R.EXPM1, 2 - 2 * E(-x), expm1(-x)),
    # the remaining hand-written shapes (issue 10, part 3)
    (R.LOG_EXPM1, sp.log(expm1(x)), LogExpm1(x)),
    (R.LOG_EXPM1, sp.log(expm1(x**2 + 1)), LogExpm1(x**2 + 1)),
    (R.LOGIT_SIGMOID, sp.log(Sigmoid(x) / Sigmoid(-x)), x),
    (R.LOGIT_SIGMOID, sp.log(2 * Sigmoid(x - y) / Sigmoid(y - x)), x - y),
    (R.COSH_SUM, sp.log((E(x - y) + E(y - x)) / 2), sp.cosh),
    (R.COSH_SUM, 3 * E(2 * x) + 3 * E(-2 * x) + y, sp.cosh),
    (R.POW_SIGMOID, (1 + E(-x)) ** (-gn), Softplus(-x)),  # σ(x)^γ spelled out, as SymPy writes it
    (R.POW_SIGMOID, (E(x - y) + 1) ** sp.Rational(1, 3), Softplus(x - y)),
    (R.SIGMOID_POWER, 1 / (1 + E(-x)) ** 2, Sigmoid(x) ** 2),
    (R.SIGMOID_POWER, y / (E(x) + 1) ** 3, Sigmoid(-x) ** 3),
    (R.SIGMOID_POWER, E(2 * x) / (1 + E(x)) ** 2, Sigmoid(x) ** 2),
    (R.SIGMOID_MINUS_WEIGHT, (Sigmoid(x) - y) ** 2, Sigmoid(-x)),
    (R.SIGMOID_MINUS_WEIGHT, 2 * (Sigmoid(x - z) - y), Sigmoid(z - x)),
    (R.SHARE_MINUS_WEIGHT, RowSum((E(x) / RowSum(E(x)) - y) ** 2), SoftmaxRest(x)),  # a multi-class Brier score
    (R.SHARE_MINUS_WEIGHT, 3 * (p / RowSum(p) - y), NormalizedRest(p)),
    (R.ROWSUM_SOFTPLUS_WEIGHTED, RowSum(Softplus(x)) - RowSum(y * x), RowSum(y * Softplus(-x) + (1 - y) * Softplus(x))),
    (R.ROWSUM_SOFTPLUS_WEIGHTED, (2 * RowSum(Softplus(x)) - 2 * RowSum(y * x)) / g, Softplus(-x)),
    # gradient rules
    (R.POWER_RULE, g * p**g / p, XMul(g, p ** (g - 1))),
    (R.ONE_FRACTION, E(z) / (E(z) + RestSum(E(z))) - y, RestSum(E(z))),
    (R.SIGMOID_DIFFERENCE, 1 - 2 * Sigmoid(x), sp.tanh(x / 2)),
    (R.SIGMOID_DIFFERENCE, 2 * Sigmoid(y - x) - 1, sp.tanh),
    # the logistic gradient σ(x) - t with symbolic weights (label smoothing 1: t = u = 1/2)
    (R.SIGMOID_PAIR, (1 - y) * Sigmoid(x) - y * Sigmoid(-x), SigmoidDiff(1 - y, y, x)),
    (R.SIGMOID_PAIR, g * (y * Sigmoid(x - t) - (1 - y) * Sigmoid(t - x)) + 3, SigmoidDiff),
    (R.EXPM1_WEIGHT, (E(x) - y) / 3, expm1),
    # d/dp of (p - y)²/C: SymPy's 2p - 2y over C, the 2 taken out again
    (R.COMMON_FACTOR, (2 * p - 2 * y) / sp.Symbol("C", positive=True, integer=True), p - y),
    # d/dp of the Poisson loss, (1 - y/p)/C: over one denominator, p - y exact, 0 at p = y
    (R.COMMON_NUMERATOR, XMul(y, -1 / (p * sp.Symbol("C", positive=True, integer=True))) + 1 / sp.Symbol("C", positive=True, integer=True), (p - y) / p),
    (R.COMMON_NUMERATOR, 2 / p - 2 * y / p**2, NanOr),
    # unit vectors (cosine similarity): value, and gradient over one denominator
    (R.SCALE_NORM, -RowSum(y * p) / (Norm2(y) * Norm2(p)), Scaled(p, Norm2(p))),
    (R.SCALE_NORM, RowSum(p**2) * p / Norm2(p) ** 3, Scaled(p, Norm2(p))),
    # a norm of the row inside the numerator is 1 over the unit vector (f homogeneous of degree d
    # counts it; it had been kept as ‖x‖, a wrong gradient of Σ(x/‖x‖ - w)²)
    (R.SCALE_NORM, (p * Norm2(p) * RestSum(p**2 / Norm2(p) - p * y) + p * RestSum(p**2)) / Norm2(p) ** 4, Scaled(p, Norm2(p))),
    (R.UNSCALE, RowSum(Scaled(p, Norm2(p)) * y), Norm2(p)),
    (R.NORM_SQUARE, -y / (Norm2(y) * Norm2(p)) + p * (p * y + RestSum(p * y)) / (Norm2(y) * Norm2(p) ** 3), RestSum(p**2)),
    (R.MAX_MINUS_SUM, RowMax((1 - y) * p) - RowSum(y * p) + 1, MaxMinusSum),
    (R.LOG1P_DIFFERENCE, (log1p(p) - log1p(y)) ** 2, Log1pDiff(p, y)),
    (R.LOG_DIFFERENCE, (sp.log(p) - sp.log(y)) ** 2, LogRatio(p, y)),
    (R.LOG_DIFFERENCE, g * sp.log(p + g) - g * sp.log(y), LogRatio(p + g, y)),
    # r - 1 - log r (generalised KL, Poisson and gamma deviances, Itakura–Saito), however the logs are written
    (R.LOG_RATIO_GAP, y * sp.log(y / p) - y + p, Expm1mx(LogRatio(p, y))),
    (R.LOG_RATIO_GAP, 2 * (y * sp.log(y) - y * sp.log(p) - y + p), Expm1mx(LogRatio(p, y))),
    (R.LOG_RATIO_GAP, y / p - sp.log(y / p) - 1, Expm1mx(LogRatio(y, p))),
    (R.LOG_RATIO_GAP, 2 * (sp.log(p / y) + y / p - 1) + x, Expm1mx(LogRatio(y, p))),
    (R.LOG_RATIO_GAP, p * sp.log(p / (y + 1)) - p + y + 1, Expm1mx(LogRatio(y + 1, p))),
    # a divergence between distributions whose totals are equal: a sum of gaps (the zero Σ v - w added)
    (R.LOG_RATIO_GAP, y * sp.log(y / p) + (1 - y) * sp.log((1 - y) / (1 - p)), Expm1mx(LogRatio(1 - p, 1 - y))),
    (R.EXPM1, E(-x) / g - 1 / g, expm1(-x) / g),  # a scale parameter's 1/b: the Gumbel likelihood's gradient
    # a normalised squared error: the norms' quotient where a sum of squares is out of range
    (R.SQUARES_RATIO, SumSquares(p - y) / SumSquares(y), Scaled(Norm2(p - y), Norm2(y))),
    # one power of an element: a Tweedie deviance's 2p^(2-q)/(C·p), overflowing at p = 5e-324 where p^(1-q) does not
    (R.MERGE_POWERS, 2 * p ** (2 - q) / (p * sp.Symbol("C", positive=True, integer=True)), p ** (1 - q)),
    (R.MERGE_POWERS, sp.Mul(p ** (2 - q), sp.Pow(p, -1), evaluate=False), p ** (1 - q)),
    # the derivative of |e|^q/q, 0/0 at e = 0 as SymPy writes it
    (R.MERGE_POWERS, sp.Abs(x - y) ** q * sp.sign(x - y) / sp.Abs(x - y), sp.Abs(x - y) ** (q - 1)),
    # powers homogeneous in the label and the prediction, vanishing with their slope at p = y: a
    # Tweedie deviance (-4.4e-16 for 7.1e-19 at p/y = 1 + 1e-9), a β-divergence
    (R.POWER_GAP, y ** (2 - q) / ((1 - q) * (2 - q)) - y * p ** (1 - q) / (1 - q) + p ** (2 - q) / (2 - q), Expm1mx),
    (R.POWER_GAP, (y**g + (g - 1) * p**g - g * y * p ** (g - 1)) / (g * (g - 1)) + x, Expm1mx),
    # powers of the prediction a whole number apart: the Tweedie gradient's inf - inf at p = 0
    (_predicting(R.COMMON_POWER, p), 2 * p ** (1 - q) + XMul(y, -2 * p ** (-q)), p ** (1 - q) * (2 + XMul(y, -2 / p))),
    (_predicting(R.COMMON_POWER, p), g * XMul(g - 1, p ** (g - 2)) * y - g * XMul(g, p ** (g - 1)), XMul(g - 1, 1 / p)),
    # a sum of magnitudes in a denominator: a symmetric MAPE's |y| + |p| overflows (0 for 0.26 at
    # y = 1e308, p = 1.7e308), its gradient's square past 1.3e154
    (R.MAGNITUDE_RANGE, sp.Abs(p - y) / (sp.Abs(p) + sp.Abs(y)), Scaled(p, sp.Integer(2) ** 600)),
    (R.MAGNITUDE_RANGE, y * sp.sign(p) / (sp.Abs(p) + sp.Abs(y)) ** 2, Scaled),
    # |u| = u·sign(u) where the numerator cancels in algebra: SMAPE's gradient, 310 ulps at κ = 3
    (R.ABS_SIGN, sp.sign(p - y) / (sp.Abs(p) + sp.Abs(y)) - sp.Abs(p - y) * sp.sign(p) / (sp.Abs(p) + sp.Abs(y)) ** 2, sp.sign(p) + sp.sign(y)),
    # a gradient that jumps across its branch condition (the wing loss at |e| = w): the condition as a kink
    (_predicting(R.KINK_BRANCH, p), sp.Piecewise((g * sp.sign(p - y) / (gn + sp.Abs(p - y)), sp.Abs(p - y) < g), (sp.sign(p - y), True)), sp.Heaviside(g - sp.Abs(p - y), 0)),
    # a branch between two forms of one number differentiates to one form
    (R.SAME_BRANCHES, sp.Piecewise((y * expm1(LogRatio(p, y)) / p, p < 4 * y), (1 - y / p, True)), 1 - y / p),
    # the focal factors: 1 - softmax and 1 - p/Σp as the other classes' share, -log share written back
    (R.ONE_MINUS_SHARE, 1 - E(z) / RowSum(E(z)), SoftmaxRest(z)),
    (R.ONE_MINUS_SHARE, (1 - p / RowSum(p)) ** gn, NormalizedRest(p)),
    (R.NEG_LOG_SHARE, sp.log(RowSum(E(z))) - z, NegLogSoftmax(z)),
    (R.NEG_LOG_SHARE, y * (sp.log(RowSum(p)) - sp.log(p)), NegLogNormalized(p)),
    # a^γ's derivative times a log that vanishes where the base may (1 - p_t affine in p)
    (R.LOG_GUARDED_POWER, XMul(gn, (y * (1 - p) + (1 - y) * p) ** (gn - 1)) * sp.log(p), XMul(sp.log(p), (y * (1 - p) + (1 - y) * p) ** (gn - 1))),
    (R.LOG_GUARDED_POWER, XMul(gn, (y * (1 - p) + (1 - y) * p) ** (gn - 1)) * log1p(-p), XMul(log1p(-p), (y * (1 - p) + (1 - y) * p) ** (gn - 1))),
    (R.LOG_GUARDED_POWER, p * XMul(gn, NormalizedRest(p) ** (gn - 1)) * NegLogNormalized(p), XMul(p, XMul(gn, XMul(NegLogNormalized(p), NormalizedRest(p) ** (gn - 1))))),
    (R.LOG_GUARDED_POWER, XMul(gn, SoftmaxRest(z) ** (gn - 1)) * NegLogSoftmax(z), XMul(NegLogSoftmax(z), SoftmaxRest(z) ** (gn - 1))),
    # 0/0 where the inputs are 0 (the squared Hellinger distance's gradient at p = y = 0)
    (R.split_quotient_rule(p), (sp.sqrt(p) - sp.sqrt(y)) / (2 * sp.sqrt(p)), XMul(sp.sqrt(y), -1 / (2 * sp.sqrt(p)))),
    (R.split_quotient_rule(p), (p - y) / (3 * p), NanOr),
    # a Gaussian likelihood in the log variance, (y²e^(-x) + x)/2: its label factor times e^(-x),
    # its gradient 1 - y²e^(-x) near y²e^(-x) = 1, and the mean's 1/C taken into y²/2
    (R.ZERO_TIMES_EXP, (y**2 * E(-x) + x) / 2, ScaledExp(-x, y**2 / 2)),
    (R.ONE_MINUS_SCALED_EXP, sp.Rational(1, 2) - y**2 * E(-x) / 2, expm1),
    (R.ONE_MINUS_SCALED_EXP, 1 - ScaledExp(-x, y**2), LogWeight(sp.Abs(y))),
    (R.ONE_MINUS_SCALED_EXP, 3 - 3 * g**2 * E(x - y), expm1),
    (R.ONE_MINUS_SCALED_EXP, 1 - y * E(-x), LogWeight(y)),  # a Gamma likelihood's y·e^(-s): log y NaN for y < 0
    # the soft Dice loss: 1 - N/D over one denominator, where terms of D and N cancel
    (R.ONE_MINUS_RATIO, 1 - (2 * RowSum(y * p) + g**2) / (RowSum(y) + RowSum(p) + g**2), RowSum(y) + RowSum(p) - 2 * RowSum(y * p)),
    (R.SCALE_INSIDE, (1 - ScaledExp(-x, y**2)) / sp.Symbol("C", positive=True, integer=True), InfOr),
    # Jensen–Shannon's gradient log(2p/(p + y))/2: 0/0 at p = y = 0, where its limit in p is log 2/2
    (R.log_ratio_at_zero_rule(p), LogRatio(2 * p, p + y) / 2, NanOr),
    (R.log_ratio_at_zero_rule(p), LogRatio(p, p / 3 + 2 * y / 3), sp.log(3)),
    # the focal loss' m'/m, m = 1 - p_t on logits
    (R.MIXTURE_RATIO, g * (-y * Sigmoid(-x) * Sigmoid(x) + (1 - y) * Sigmoid(-x) * Sigmoid(x)) / (y * Sigmoid(-x) + (1 - y) * Sigmoid(x)), XMul),
]


def test_every_rule_has_a_shape_it_fires_on():
    """Every rule of the value and gradient lists is in FIRES, or is one of the rules for the
    shipped shapes (tested with the shipped derivations: ``generate --check``)."""
    shipped = {"log-sigmoid", "log1p", "log-softmax", "log-normalized", "sum-squares",
               "shift-exp", "split-rowsum", "combine-weights", "cross-rest"}
    rules = {r.name for r in R.value_rules() + R.gradient_rules([y], False, p) + R.gradient_rules([y], True, p)}
    rules.discard("edge-poles")  # (its own tests below)
    assert rules - shipped == {r.name for r, _, _ in FIRES}


@pytest.mark.parametrize("rule, shape, holds", FIRES, ids=[f"{r.name}:{s}" for r, s, _ in FIRES])
def test_rule_fires_and_is_an_identity(rule, shape, holds):
    out = rule(shape)
    assert out != shape, f"{rule.name} did not fire on {shape}"
    assert (out.has(holds) if isinstance(holds, sp.Basic) else out.atoms(holds) or out.has(holds)), out
    R.check_equivalent(shape, out)  # raises RewriteError unless equal in 60 digits at random rows


KEEPS = [
    (R.SIGMOID, E(x) / RowSum(E(x))),  # the softmax: the log-softmax rule's
    (R.SIGMOID, (E(x) - E(-x)) / (E(x) + E(-x))),  # tanh: not a sigmoid of one difference
    (R.HYPOT, sp.sqrt(1 + x)),  # not a square under the root
    (R.HYPOT, sp.sqrt((x - y) ** 2 + g**2)),  # g may be 0: √(e²) is |e|, not a hypot of e/0
    (R.TANH_SIGMOID, sp.tanh(x)),  # a tanh alone: 2σ(2x) - 1 cancels near 0
    (R.TANH_SIGMOID, 1 + 2 * sp.tanh(x)),
    (R.LOG_SPLIT, sp.log(p / RowSum(p))),  # p may be 0: the log-normalized rule's
    (R.LOG_SPLIT, sp.log(2 * sp.pi)),
    (R.XLOGY, t * sp.log(p)),  # a label weight times log p: the guard's
    (R.POW1P, (1 - p) ** 2),  # an integer power: exact enough, and real for any p
    (R.POW1P_SQUARE, (1 + x**2) ** 2),  # an integer power: the polynomial rules'
    (R.POW1P_SQUARE, (1 + x**2 / (g - 2)) ** (g / 2)),  # g - 2 of either sign: not a square
    (R.POWM1, 1 - p**2),
    (R.POWM1, 1 - (1 + x) ** 9),  # a long polynomial: left as it is
    (R.ONE_MINUS_RATIO, 1 - RowSum(y) / (RowSum(p) + g)),  # nothing cancels
    (R.EXPM1MX, E(x) - 1 - 2 * x),  # not the exponential's own first terms
    (R.COMMON_FACTOR, 2 * Sigmoid(x) - 2 * y),  # a function in the sum: the sigmoid rules' shape
    (R.SIGMOID_PAIR, y * Sigmoid(-x) + (1 - y) * Sigmoid(x)),  # terms of one sign: nothing cancels
    (R.SIGMOID_PAIR, Sigmoid(x) - y * Sigmoid(-z)),  # not one argument and its negative
    (R.LOG1MEXP, sp.log(1 - p)),  # the log1p rule's
    # a row sum inside a row operator's argument is a constant of the row there: split at element
    # j it would be read at every c (a RewriteError, "rewrite changed the value", on a user's loss)
    (R.SPLIT_ROWSUM, E(x - RowMax(x - RowSum(x * y)))),
    (R.SPLIT_ROWSUM, NegLogSoftmax(x - RowSum(y * x))),
    (R.LOG_SUM_EXP, sp.log(RowSum(y * E(z)))),
    (R.NORM2, SumSquares(x)),
    (R.EXPM1, E(x) - 2),
    (R.LOG_EXPM1, sp.log(expm1(g))),
    (R.LSE_WEIGHTS, sp.log(RowSum(y * z * E(z)))),  # not a weight times one exponential
    (R.LSE_WEIGHTS, sp.log(RowSum(E(z)))),  # the log-sum-exp rule's
    (R.SHIFT_EXP_WEIGHTED, E(z + LogWeight(y))),  # not homogeneous: the shift would change it  # no element: a constant
    (R.LOGIT_SIGMOID, sp.log(Sigmoid(x) / Sigmoid(y))),  # not the logit of one sigmoid
    (R.SIGMOID_POWER, 1 / (1 + E(-x))),  # n = 1: the sigmoid rule's
    (R.SIGMOID_POWER, 1 / (2 + E(-x) + E(x)) ** 2),  # three terms
    (R.SIGMOID_MINUS_WEIGHT, Sigmoid(x) - g),  # a parameter, not a label
    (R.SHARE_MINUS_WEIGHT, E(x) / RowSum(E(x)) - g),  # a parameter, not a label
    (R.SHARE_MINUS_WEIGHT, E(x) / RowSum(E(z)) - y),  # not a share of its own row
    (R.ROWSUM_SOFTPLUS_WEIGHTED, RowSum(Softplus(x)) - RowSum(y * z)),  # y·z is not y times the softplus' argument
    (R.ROWSUM_SOFTPLUS_WEIGHTED, RowSum(x**2) - RowSum(y * x)),  # no softplus: the row sums stay apart
    (R.SCALE_NORM, RowSum(p**3) / Norm2(p) ** 2),  # degree 3 > 2: the unit vector would not absorb it
    (R.SCALE_NORM, RowSum(sp.exp(p)) / Norm2(p)),  # not homogeneous in p
    (R.NORM_SQUARE, y / Norm2(p) + p / Norm2(p) ** 3),  # nothing cancels: the terms stay as they were
    (R.MAX_MINUS_SUM, RowMax(x) - RowSum(y)),  # no element in common: nothing to cancel
    (R.LOG1P_DIFFERENCE, log1p(p) - log1p(g)),  # a parameter: no row element on one side
    (R.LOG_DIFFERENCE, sp.log(p) - sp.log(g)),  # a parameter: no row element on one side
    (R.LOG_DIFFERENCE, sp.log(Sigmoid(x)) - sp.log(p)),  # log σ has its own form (log-split's)
    (R.LOG_DIFFERENCE, sp.log(p) - 2 * sp.log(y)),  # not one coefficient: log(p/y²) is another matter
    (R.LOG_RATIO_GAP, y * sp.log(y / p)),  # KL: no r - 1 beside the log (it does not cancel)
    (R.MERGE_POWERS, (p - y) / (p * sp.Symbol("C", positive=True, integer=True))),  # Poisson's gradient: no power to merge
    (R.MERGE_POWERS, p**2 / p**3),  # numbers SymPy merges itself
    (R.MAGNITUDE_RANGE, sp.Abs(p - y) / sp.Abs(y)),  # MAPE: one magnitude, which cannot overflow alone
    # Huber's gradient: e and δ·sign(e) meet at |e| = δ (no jump: the rounded condition is harmless)
    (_predicting(R.KINK_BRANCH, p), sp.Piecewise((p - y, sp.Abs(p - y) <= _delta), (_delta * sp.sign(p - y), True))),
    (R.MAGNITUDE_RANGE, (p - y) / (p**2 + 1)),  # not homogeneous: no scaling keeps it
    (R.MAGNITUDE_RANGE, (p - y) / (p + y)),  # a sum that may cancel: not a sum of magnitudes
    (R.ABS_SIGN, sp.sign(p) / (sp.Abs(p) + sp.Abs(y)) + y),  # nothing cancels
    (R.POWER_GAP, y**q - p**q),  # no term of the slope: vanishes at p = y but changes sign there
    (R.POWER_GAP, y**2 - 2 * y * p + p**2 + x),  # whole powers: a polynomial (bases of either sign)
    (_predicting(R.COMMON_POWER, p), p**q + y**q),  # one power of the prediction
    (_predicting(R.COMMON_POWER, p), p**q - y * p ** (g - 1)),  # exponents not a whole number apart
    (R.LOG_RATIO_GAP, p - y * sp.log(p)),  # Keras's Poisson: k·(r - 1) is not there
    (R.LOG_RATIO_GAP, -y * sp.log(p) - (1 - y) * sp.log(1 - p)),  # BCE: no common coefficient
    (R.LOG_RATIO_GAP, (sp.log(1 + p) - sp.log(1 + y)) ** 2),  # MSLE: no r - 1 either
    (R.SAME_BRANCHES, sp.Piecewise((p**2 / 2, sp.Abs(p - y) < 1), (sp.Abs(p - y) - sp.Rational(1, 2), True))),  # Huber: two functions
    (R.POW1P, (1 - y * Sigmoid(x) - (1 - y) * Sigmoid(-x)) ** g),  # 1 - p_t: the one-minus-sigmoid rule's
    (R.MIXTURE_RATIO, Sigmoid(x) / (y * Sigmoid(-x) + (1 - y) * Sigmoid(x))),  # not a multiple of σ(x)σ(-x)
    (R.ONE_MINUS_SHARE, 1 - p / RowSum(y)),  # not p's own share
    (R.ONE_MINUS_SHARE, 2 - p / RowSum(p)),
    (R.NEG_LOG_SHARE, sp.log(RowSum(E(z))) - x),  # another element
    (R.LOG_GUARDED_POWER, XMul(gn, (p**2) ** (gn - 1)) * sp.log(p)),  # p² vanishes faster than log p
    (R.LOG_GUARDED_POWER, XMul(g, (1 - p) ** (g - 1)) * sp.log(p)),  # g may be negative
    (R.LOG_GUARDED_POWER, XMul(gn, SoftmaxRest(z) ** (gn - 1)) * NegLogNormalized(p)),  # not the same share
    (R.COMMON_NUMERATOR, XMul(t, -1 / p) + XMul(y, 1 / (1 - p))),  # t(p - 1) + y·p: not a difference of inputs
    (R.COMMON_NUMERATOR, 1 - y * sp.log(p) / p),  # not rational
    (R.COMMON_NUMERATOR, 1 / p + 1 / y),  # (p + y)/(p·y): nothing cancelled
    (R.ZERO_TIMES_EXP, x * E(x)),  # the factor holds the exponent's input: x·e^x is not 0·inf at x = 0
    (R.ZERO_TIMES_EXP, 2 * E(-x)),  # a number: never 0
    (R.ZERO_TIMES_EXP, ScaledExp(-x, y) * E(x)),  # already scaled
    (R.ONE_MINUS_SCALED_EXP, 1 - sp.sin(y) * E(-x)),  # a factor of either sign that is not an input: no log of it
    (R.ONE_MINUS_SCALED_EXP, 2 - y**2 * E(-x)),  # not k - k·a·e^u
    (R.ONE_MINUS_SCALED_EXP, 1 - 2 * E(-x)),  # a number: the expm1 rule's shape, or no cancellation to fear
    (R.SCALE_INSIDE, (1 - y * x) / sp.Symbol("C", positive=True, integer=True)),  # no scaled exponential
    (R.split_quotient_rule(p), (p - y) / (p + 1)),  # no pole at p = 0
    (R.split_quotient_rule(p), (sp.sqrt(p) + 1) / sp.sqrt(p)),  # 1/0, not 0/0: inf is the limit
    (R.split_quotient_rule(p), (sp.log(p) - y) / p),  # a function: not an algebraic quotient
    (R.split_quotient_rule(p), NanOr((p - y) / p, 1 - XMul(y, 1 / p))),  # its pair of forms already
    (R.log_ratio_at_zero_rule(p), LogRatio(y, p)),  # x in one argument only: -inf at p = 0 < y is the limit
    (R.log_ratio_at_zero_rule(p), LogRatio(p, p - y)),  # not a positive form: 0 where p = y > 0
    (R.log_ratio_at_zero_rule(p), LogRatio(p, p * y + y)),  # not linear
    (R.split_quotient_rule(p), (p - y) / (p * (p - 2))),  # no label factor against the pole: nothing to guard
    (R.split_quotient_rule(p), (p - y) / p**2),  # 1/p - y/p² at y = 0 is 1/p: no finite limit to give
]


def test_edge_poles_gives_the_limit_where_the_sum_is_inf_minus_inf():
    """c/p + d·log p at p = 0 (and the mirror at p = 1): the second form of NanOr has the pole's
    infinity where the first is NaN, and both forms are the expression (the identity check)."""
    t2 = Elem("t")
    G = XMul(t2, -(1 - p) ** gn / p) - XMul(t2**2, gn * sp.log(p)) + XMul(y, 1 / (1 - p)) - XMul(y**2, log1p(-p))
    out = R.edge_poles(G, p)
    assert isinstance(out, NanOr)
    for form in nan_or_forms(out):
        R.check_equivalent(G, form)
    first, second = (sp.lambdify([t2, y, p, gn], f, modules=[{"XMul": lambda a, b: 0.0 if a == 0 else a * b}, "numpy"]) for f in out.args)
    one, zero, half = np.float64(1), np.float64(0), np.float64(0.5)
    with np.errstate(all="ignore"):
        assert second(one, zero, zero, half) == -np.inf and second(zero, one, one, half) == np.inf
        assert np.isnan(first(one, one, zero, half))
    assert R.edge_poles(XMul(t2, 1 / p) + XMul(y, 1 / (1 - p)), p) == XMul(t2, 1 / p) + XMul(y, 1 / (1 - p))  # poles, no log: nothing to do


def test_common_numerator_second_form_is_exact_only_where_shown():
    """(p - y)/p is NaN at finite inputs only at p = y = 0, where the zero-guarded 1 - y/p is 1:
    the pair's second form is exact wherever taken, and the pair needs no magnitude of its own
    (its rounding error is the first form's); where the second form is not a constant there
    (1/x - y/(p·x): 1/x at p = y = 0), it is not, and the magnitude keeps both forms."""
    from cesym.generate.exact import needs_magnitude

    Cs = sp.Symbol("C", positive=True, integer=True)
    out = R.COMMON_NUMERATOR(XMul(y, -1 / (p * Cs)) + 1 / Cs)
    (pair,) = out.atoms(NanOr)
    assert R.second_form_exact(pair) and not needs_magnitude(out)
    G = 1 / x - XMul(y, 1 / (p * x))
    other = R.COMMON_NUMERATOR(G)
    (pair,) = other.atoms(NanOr)
    assert not R.second_form_exact(pair) and needs_magnitude(other)
    for form in nan_or_forms(other):
        R.check_equivalent(G, form)


def test_a_difference_of_one_function_has_no_error_where_its_inputs_are_equal():
    """magnitude(f(a) - f(b)) is 0 where a = b and f(a), f(b) come out equal (the difference is
    then the exact 0), |f(a)| + |f(b)| elsewhere; the same for k·f(a) - k·f(b). Other sums
    (two functions, a function of a non-input, three terms) keep the plain magnitude."""
    from cesym.generate.exact import magnitude

    for e, (a, b), k in ((sp.log(y) - sp.log(p), (y, p), 1), (3 * sp.exp(p) - 3 * sp.exp(y), (p, y), 3)):
        m = magnitude(e)
        assert isinstance(m, sp.Piecewise)
        f = sp.lambdify([y, p], m, modules="numpy")
        v = np.array([0.25, 0.5, 2.0])
        fa, fb = (sp.lambdify([y, p], t)(v, v[::-1]) for t in e.args)
        np.testing.assert_array_equal(f(v, v[::-1]), np.where(v == v[::-1], 0.0, np.abs(fa) + np.abs(fb)))
    for e in (sp.log(y) - sp.exp(p), sp.log(y) - sp.log(2 * p), sp.log(y) - sp.log(p) + x):
        assert not magnitude(e).has(sp.Piecewise)


@pytest.mark.parametrize("rule, shape", KEEPS, ids=[f"{r.name}:{s}" for r, s in KEEPS])
def test_rule_leaves_other_shapes_alone(rule, shape):
    assert rule(shape) == shape


def test_shift_exp_only_where_it_is_an_identity():
    """exp(z) -> exp(z - max z) is made in a softmax (homogeneous of degree 0 in exp(z)), not in
    tanh written with exp(x) and exp(-x), where it would change the value (it used to raise)."""
    soft = E(z) / RowSum(E(z)) - y
    assert R.SHIFT_EXP(soft).has(RowMax(z))
    th = (E(x) - E(-x)) / (E(x) + E(-x))
    assert R.SHIFT_EXP(th) == th


def test_value_rules_reach_a_fixed_point():
    """One rule's output is the next one's input: σ written out inside a log, to -softplus."""
    out, applied = R.apply_rules(sp.log(1 / (1 + E(-x))), R.value_rules(), repeat=True)
    assert out == -Softplus(-x) and [r.name for r in applied] == ["sigmoid", "log-sigmoid"]


# --- generating a derivations directory written by hand ---------------------------------------------

HEADER = """
from sympy import Rational, Symbol, cosh, exp, log, sqrt
from cesym.define.loss import Loss
from cesym.define.primitives import C, Elem, RowSum

y, x, z, p, t, u = Elem("y"), Elem("x"), Elem("z"), Elem("p"), Elem("t"), Elem("u")
g, q = Symbol("g", real=True), Symbol("q", real=True)
"""

ISSUE = HEADER + """
LOSSES = [
    Loss(family="issue", variant="margin", title="margin logistic loss",
         value=RowSum(log(1 + exp(Rational(1, 2) - (2*y - 1)*x)))/C, prediction=x, label=y),
    Loss(family="issue", variant="bce", title="binary cross-entropy, sigma written out",
         value=-RowSum(t*log(1/(1 + exp(-x))) + u*log(1 - 1/(1 + exp(-x))))/C, prediction=x, label=y,
         weights={t: y, u: 1 - y}),
    Loss(family="issue", variant="softmax", title="softmax cross-entropy as lse - sum y z",
         value=log(RowSum(exp(x))) - RowSum(y*x), prediction=x, label=y),
]
"""

SHAPES = HEADER + """
LOSSES = [
    Loss(family="shapes", variant="log1mexp", title="Bernoulli with P(event) = 1 - exp(-rate)",
         value=-RowSum(y*log(1 - exp(-p)) + (1 - y)*log(exp(-p)))/C, prediction=p, label=y,
         domain="probability"),
    Loss(family="shapes", variant="lse", title="-sum y (z - log sum exp z)",
         value=-RowSum(y*(z - log(RowSum(exp(z))))), prediction=z, label=y),
    Loss(family="shapes", variant="kl", title="KL divergence sum y log(y/p)",
         value=RowSum(y*log(y/p)), prediction=p, label=y, weights={y: y}, domain="probability"),
    Loss(family="shapes", variant="focal", title="binary focal loss on probabilities",
         value=-RowSum(t*(1 - p)**g*log(p) + u*p**g*log(1 - p))/C, prediction=p, label=y,
         weights={t: y, u: 1 - y}, params=(g,), param_ranges={g: (0.0, 5.0)}, domain="probability"),
    Loss(family="shapes", variant="gce", title="generalised cross-entropy (1 - p^q)/q",
         value=RowSum(y*(1 - p**q))/q, prediction=p, label=y, params=(q,), param_ranges={q: (0.05, 1.0)},
         domain="probability"),
    Loss(family="shapes", variant="logcosh", title="log-cosh regression",
         value=RowSum(log(cosh(x - y)))/C, prediction=x, label=y),
    Loss(family="shapes", variant="norm", title="Euclidean distance",
         value=sqrt(RowSum((x - y)**2)), prediction=x, label=y),
    Loss(family="shapes", variant="poisson", title="Poisson NLL of a log-rate",
         value=RowSum(exp(x) - y*x)/C, prediction=x, label=y),
    Loss(family="shapes", variant="softplus", title="logistic loss as log(1 + e^x) - y x",
         value=RowSum(log(1 + exp(x)) - y*x)/C, prediction=x, label=y),
    Loss(family="shapes", variant="entropy", title="entropy of the prediction",
         value=-RowSum(p*log(p)), prediction=p, domain="probability"),
    Loss(family="shapes", variant="logistic", title="logistic distribution NLL (log of a quotient)",
         value=-RowSum(log(exp(y - x)/(1 + exp(y - x))**2))/C, prediction=x, label=y),
]
"""


def _generate_files(tmp_path_factory, name: str, files: dict[str, str]):
    """Derivation files ``{family: text}`` generated (the edge check included) in a temporary
    directory: ({family: module namespace}, {loss name: Loss})."""
    base = tmp_path_factory.mktemp(name)
    src, out = base / "derivations", base / "gen"
    src.mkdir()
    for family, text in files.items():
        (src / f"{family}.py").write_text(text)
    assert sorted(generate(src, out)) == sorted(["__init__.py", *(f"{f}.py" for f in files)])
    modules = {f: load_module((out / f"{f}.py").read_text(), f) for f in files}
    losses = {l.name: l for f in files for l in load_derivation(src / f"{f}.py")}
    return modules, losses


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Both directories generated once: {family: module namespace}, and the losses by name."""
    return _generate_files(tmp_path_factory, "stable", {"issue": ISSUE, "shapes": SHAPES})


def _run(fn, labels, pred, params=()):
    with np.errstate(all="ignore"):
        out = fn(np.array([labels], float), np.array([pred], float), *params)
    return out if isinstance(out, tuple) else (out,)


def _within_contract(loss, value, grad, labels, pred, params, true_value, true_grad):
    """value <= 4 + 4κ ulps, each gradient element <= 8 + 4κ ulps (κ by the interval reference)."""
    ref = RowReference(loss, len(pred))
    kv, kg = ref.kappa(labels, pred, params, value=true_value, grad=true_grad)
    v = float(np.ravel(value)[0])
    assert ulp_error(v, true_value, np.float64) <= 4 + 4 * kv, (loss.name, v, true_value, kv)
    for j, (a, b, k) in enumerate(zip(np.ravel(grad), true_grad, kg)):
        assert ulp_error(a, b, np.float64) <= 8 + 4 * k, (loss.name, j, a, b, k)


# --- (b) the issue's three losses at the issue's rows --------------------------------------------------


def _sp(v):  # log(1 + e^v) in mpmath, no cancellation whatever v
    return mpmath.log1p(mpmath.exp(v))


def _sig(v):
    return 1 / (1 + mpmath.exp(-v))


def _issue_reference(name, labels, row):
    """Value and gradient of the issue's losses, 50 digits, written so that nothing cancels."""
    with mpmath.workdps(50):
        ys, xs = [mpmath.mpf(v) for v in labels], [mpmath.mpf(v) for v in row]
        n = len(xs)
        if name == "margin":
            m = [mpmath.mpf(1) / 2 - (2 * a - 1) * b for a, b in zip(ys, xs)]
            return sum(_sp(v) for v in m) / n, [-(2 * a - 1) * _sig(v) / n for a, v in zip(ys, m)]
        if name == "bce":  # -log σ(x) = softplus(-x), -log(1 - σ(x)) = softplus(x)
            val = sum(a * _sp(-b) + (1 - a) * _sp(b) for a, b in zip(ys, xs)) / n
            return val, [(_sig(b) - a) / n for a, b in zip(ys, xs)]
        m = max(xs)
        lse = m + mpmath.log(mpmath.fsum(mpmath.exp(b - m) for b in xs))
        return lse - mpmath.fsum(a * b for a, b in zip(ys, xs)), [mpmath.exp(b - lse) - a for a, b in zip(ys, xs)]


ISSUE_POINTS = [
    # the issue's rows and numbers: margin 800.5 at x = 800, label 0; BCE 534.35; softmax 1600
    ("margin", [0.0], [800.0], 800.5),
    ("margin", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], None),
    ("bce", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], 534.35),
    ("softmax", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], 1600.0),
    ("softmax", [1.0, 0.0, 0.0], [30.0, -30.0, 0.0], None),  # the labelled class dominant
]


@pytest.mark.parametrize("name, labels, row, quoted", ISSUE_POINTS, ids=[f"{a}:{c}" for a, _, c, _ in ISSUE_POINTS])
def test_issue_losses_stable_at_the_issue_rows(generated, name, labels, row, quoted):
    modules, losses = generated
    ns = modules["issue"]
    value, grad = _run(ns[f"{name}_value_and_grad"], labels, row)
    true_v, true_g = _issue_reference(name, labels, row)
    if quoted is not None:
        assert abs(float(true_v) - quoted) < 0.01  # the issue's exact value
    _within_contract(losses[f"issue.{name}"], value, grad, labels, row, (), true_v, true_g)
    # the naive form of the same definition is what the issue saw: inf, NaN or digits lost
    nv, ng = _run(ns[f"{name}_naive_value"], labels, row)[0], _run(ns[f"{name}_naive_grad"], labels, row)[0]
    bad_value = not np.isfinite(nv).all() or ulp_error(float(np.ravel(nv)[0]), true_v, np.float64) > 1e6
    bad_grad = not np.isfinite(ng).all() or max(ulp_error(a, b, np.float64) for a, b in zip(np.ravel(ng), true_g)) > 1e6
    assert bad_value or bad_grad


def test_issue_rewrites_are_the_stable_ones(generated):
    """What the kernels print: softplus for the margin loss, σ and softplus for the BCE, and for
    the softmax the max-shifted log-sum-exp with the labels' part as a negative log-softmax."""
    _, losses = generated
    rules = {n: [r.name for r in derive(losses[f"issue.{n}"]).value_rules] for n in ("margin", "bce", "softmax")}
    assert rules == {
        "margin": ["softplus"],
        "bce": ["sigmoid", "log-sigmoid"],
        "softmax": ["log-sum-exp", "lse-minus-weighted-sum"],
    }


# --- (c) one more loss per listed shape --------------------------------------------------------------

SHAPE_POINTS = [
    # (variant, labels, prediction, params, expected value rule): rows where the naive form breaks
    ("log1mexp", [1.0, 0.0, 0.0], [1e-300, 0.25, 1.0], (), "log1mexp"),
    ("lse", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], (), "log-sum-exp"),
    ("lse", [1.0, 0.0, 0.0], [30.0, -30.0, 0.0], (), "log-softmax-difference"),
    ("focal", [1.0, 0.0, 0.0], [1e-16, 0.5, 0.25], (1e16,), "pow1p"),
    ("gce", [0.0, 1.0, 0.0], [0.5, 1 - 2**-53, 0.25], (0.05,), "powm1"),
    ("logcosh", [0.0, 1.0, 0.0], [800.0, -800.0, 1e-8], (), "log-cosh"),
    ("norm", [0.0, 0.0, 0.0], [1e200, -1e200, 1e200], (), "scaled-norm"),
    ("norm", [0.0, 0.0, 0.0], [1e-200, -3e-200, 1e-300], (), "scaled-norm"),
    ("logistic", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], (), "log-split"),
    ("softplus", [1.0, 0.0, 0.0], [30.0, -30.0, 0.0], (), "softplus-minus-weighted"),
    ("softplus", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], (), "softplus"),
]


@pytest.mark.parametrize("variant, labels, pred, params, rule", SHAPE_POINTS, ids=[f"{a}:{c}" for a, _, c, _, _ in SHAPE_POINTS])
def test_shape_losses_stable_where_the_naive_form_breaks(generated, variant, labels, pred, params, rule):
    modules, losses = generated
    loss = losses[f"shapes.{variant}"]
    assert rule in [r.name for r in derive(loss).value_rules]
    ns = modules["shapes"]
    value, grad = _run(ns[f"{variant}_value_and_grad"], labels, pred, params)
    true_v, true_g = RowReference(loss, 3).value_and_grad(labels, pred, params)
    _within_contract(loss, value, grad, labels, pred, params, true_v, true_g)
    nv = float(np.ravel(_run(ns[f"{variant}_naive_value"], labels, pred, params)[0])[0])
    ng = np.ravel(_run(ns[f"{variant}_naive_grad"], labels, pred, params)[0])
    errors = [ulp_error(nv, true_v, np.float64)] + [ulp_error(a, b, np.float64) for a, b in zip(ng, true_g)]
    assert max(errors) > 1e6, errors  # the naive form: inf, NaN, or most digits lost


def test_poisson_gradient_near_zero_and_entropy_at_a_subnormal(generated):
    """Gradients that cancel or overflow in SymPy's form: the Poisson loss' e^x - y at x = 1e-300,
    y = 1 (1e-300/3; the naive form gives 0) and at x = 800 with y = 1 (inf, the true value
    past the largest float, not NaN); the entropy's d(-p log p)/dp = -(1 + log p) at p = 5e-324
    (SymPy's p·(1/p) overflows there)."""
    ns, losses = generated[0]["shapes"], generated[1]
    rows = ([1.0, 0.0, 0.0], [1e-300, -1e-300, 0.0]), ([1.0, 0.0, 0.0], [800.0, -800.0, 3.0])
    for labels, pred in rows:
        _, grad = _run(ns["poisson_value_and_grad"], labels, pred)
        true_v, true_g = RowReference(losses["shapes.poisson"], 3).value_and_grad(labels, pred)
        assert all(ulp_error(a, b, np.float64) <= 8 + 4 * 800 for a, b in zip(np.ravel(grad), true_g)), (grad, true_g)
    naive = _run(ns["poisson_naive_grad"], [1.0, 0.0, 0.0], [1e-300, -1e-300, 0.0])[0]
    assert naive[0, 0] == 0.0  # e^(1e-300) - 1
    with np.errstate(all="ignore"):
        value, grad = ns["entropy_value_and_grad"](np.array([[5e-324, 0.25, 1.0]]))
    true_v, true_g = RowReference(losses["shapes.entropy"], 3).value_and_grad([], [5e-324, 0.25, 1.0])
    assert ulp_error(grad[0, 0], true_g[0], np.float64) <= 8 and ulp_error(value[0, 0], true_v, np.float64) <= 8


def test_kl_zero_labels_cost_nothing(generated):
    """y·log(y/p) with 0·log 0 = 0: a zero label on a zero probability is 0, value and gradient
    (the naive form gives NaN), and a label of 1 on a subnormal probability is log(1/p) = 744.4
    (y/p overflows in the naive form); the definition itself is NaN at 0·log(0/0), so the
    expected numbers are written here."""
    ns = modules_kl = generated[0]["shapes"]
    value, grad = _run(ns["kl_value_and_grad"], [0.0, 1.0, 0.0], [0.0, 1e-300, 1.0])
    assert ulp_error(float(value[0, 0]), mpmath.log(mpmath.mpf(1) / mpmath.mpf(1e-300)), np.float64) <= 4
    assert grad[0, 0] == 0.0 and grad[0, 2] == 0.0 and ulp_error(grad[0, 1], -1 / mpmath.mpf(1e-300), np.float64) <= 8
    assert np.isnan(_run(modules_kl["kl_naive_value"], [0.0, 1.0, 0.0], [0.0, 1e-300, 1.0])[0]).all()
    value, _ = _run(ns["kl_value_and_grad"], [1.0, 0.0, 0.0], [5e-324, 0.5, 0.5])
    assert ulp_error(float(value[0, 0]), 1074 * mpmath.log(2), np.float64) <= 4


def test_the_edge_check_fails_the_naive_kernels(generated):
    """The edge check is what would have caught the issue: the issue's losses printed as if no
    rule had fired (stable form = the definition) are refused, each with the loss, the input and
    the subexpression that goes wrong; the stable ones pass."""
    from cesym.generate.codegen import render_family

    modules, losses = generated
    for name in ("margin", "bce", "softmax"):
        loss = losses[f"issue.{name}"]
        d = derive(loss)
        check_edges(loss, d, modules["issue"])  # the stable kernel: passes
        unrewritten = dataclasses.replace(d, value=d.naive_value, grad=d.naive_grad, value_rules=(), grad_rules=())
        ns = load_module(render_family("issue", [unrewritten]), "issue")
        with pytest.raises(DerivationError, match=rf"issue\.{name}: stable (value|gradient).* at y=\[.*\]: in {name}_value_and_grad, `[^`]+`.* is (inf|nan|-?[0-9])"):
            check_edges(loss, unrewritten, ns)


# --- (d) a loss no rule makes stable: generate fails, one line, nothing written ----------------------

UNSTABLE = HEADER + """
LOSSES = [
    Loss(family="robust", variant="quartic", title="log(1 + r^2 + r^4), no rule for it",
         value=RowSum(log(1 + (x - y)**2 + (x - y)**4))/C, prediction=x, label=y),
]
"""

UNSTABLE_NAN = HEADER + """
LOSSES = [
    Loss(family="robust", variant="tanh", title="tanh written out",
         value=RowSum(y*(exp(x) - exp(-x))/(exp(x) + exp(-x)))/C, prediction=x, label=y),
]
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (UNSTABLE, r"robust\.quartic: stable value is inf where the definition gives 1842\.06\d* at y=\[1\.0, 0\.0, 0\.0\], "
                   r"x=\[1e\+200, -1e\+200, 1e\+200\]: in quartic_value_and_grad, `numpy\.log1p\(tmp1\)` \(tmp0 = x - y; tmp1 = tmp0\*\*4 \+ tmp0\*\*2\) is inf"),
        (UNSTABLE_NAN, r"robust\.tanh: stable value is 0\.0, .* ulps from the definition's 3\.33\d*e-301 .* at y=\[1\.0, 0\.0, 0\.0\], "
                       r"x=\[1e-300, -1e-300, 2\.2250738585072014e-308\]: in tanh_value_and_grad, `tmp\d - tmp\d` \(tmp\d = numpy\.exp\(x\); tmp\d = numpy\.exp\(-x\)\) is 0\.0"),
    ],
    ids=["inf", "digits lost"],
)
def test_unstable_loss_fails_generate_one_line_exit_2(tmp_path, text, expected):
    src, out = tmp_path / "derivations", tmp_path / "gen"
    src.mkdir()
    out.mkdir()
    (out / "keep.txt").write_text("untouched\n")
    (src / "robust.py").write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "cesym.cli", "generate", "--derivations", str(src), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and r.stdout == "", r.stderr
    assert "robust.py" in lines[0], lines[0]
    assert re.search(expected, lines[0]), lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing written


# --- (e) the remaining hand-written shapes of issue 10, part 3 ----------------------------------------

MORE = HEADER + """
LOSSES = [
    Loss(family="more", variant="logexpm1", title="log(e^u - 1) of u = 1 + x^2",
         value=RowSum(log(exp(1 + x**2) - 1))/C, prediction=x, label=y),
    Loss(family="more", variant="logexpm1p", title="log(e^p - 1) of a probability (inverse softplus)",
         value=-RowSum(t*log(exp(p) - 1))/C, prediction=p, label=y, weights={t: y}, domain="probability"),
    Loss(family="more", variant="logit", title="squared error of the logit of a sigmoid written out",
         value=RowSum((log((1/(1 + exp(-x)))/(1 - 1/(1 + exp(-x)))) - y)**2)/C, prediction=x, label=y),
    Loss(family="more", variant="brier", title="Brier score of a sigmoid written out",
         value=RowSum((1/(1 + exp(-x)) - y)**2)/C, prediction=x, label=y),
    Loss(family="more", variant="sqsig", title="label times a squared sigmoid written out",
         value=RowSum(y/(1 + exp(-x))**2)/C, prediction=x, label=y),
    Loss(family="more", variant="wlse", title="weighted log-sum-exp",
         value=log(RowSum(y*exp(x))), prediction=x, label=y),
    Loss(family="more", variant="split", title="logistic loss as two row sums",
         value=(RowSum(log(1 + exp(x))) - RowSum(y*x))/C, prediction=x, label=y),
    Loss(family="more", variant="genkl", title="generalised KL divergence",
         value=RowSum(y*log(y/p) - y + p), prediction=p, label=y, weights={y: y}, domain="probability"),
    Loss(family="more", variant="bkl", title="Bernoulli KL divergence",
         value=RowSum(y*log(y/p) + (1 - y)*log((1 - y)/(1 - p)))/C, prediction=p, label=y, domain="probability"),
    Loss(family="more", variant="nse", title="normalised squared error",
         value=RowSum((p - y)**2)/RowSum(y**2), prediction=p, label=y),
    Loss(family="more", variant="isd", title="Itakura-Saito divergence",
         value=RowSum(Elem("y", positive=True)/p - log(Elem("y", positive=True)/p) - 1), prediction=p,
         label=Elem("y", positive=True), domain="probability"),
]
"""


@pytest.fixture(scope="module")
def generated_more(tmp_path_factory):
    """The remaining shapes' losses generated once (the edge check included): module, losses."""
    modules, losses = _generate_files(tmp_path_factory, "more", {"more": MORE})
    return modules["more"], losses


MORE_POINTS = [
    # (variant, labels, prediction, expected value rule): rows where the naive form breaks
    ("logexpm1", [0.0, 0.0, 0.0], [30.0, -800.0, 0.5], "log-expm1"),  # e^901 = inf
    ("logexpm1p", [1.0, 1.0, 0.0], [1e-300, 1e-10, 0.5], "log-expm1"),  # e^(1e-300) - 1 = 0: log 0; e^(1e-10) - 1: 7 digits
    ("logit", [0.0, 1.0, 0.0], [40.0, 1e-10, 3.0], "logit-sigmoid"),  # 1 - σ(40) = 0; log 2 - log 2
    ("brier", [0.0, 1.0, 0.0], [-800.0, 30.0, 800.0], "sigmoid-minus-label"),  # inf/inf; σ(30) - 1
    ("sqsig", [1.0, 1.0, 0.0], [-800.0, 3.0, 800.0], "sigmoid-power"),  # e^800/(1 + e^800)^3 = NaN
    ("wlse", [0.5, 0.25, 0.25], [800.0, -800.0, 3.0], "log-sum-exp-weighted"),  # e^800 = inf
    ("wlse", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], "log-sum-exp-weighted"),  # 0·inf; zero weight on the max
    ("wlse", [1.0, 1.0, 0.0], [-800.0, -790.0, -1000.0], "log-sum-exp-weighted"),  # every term 0: log 0
    ("split", [1.0, 0.0, 0.0], [30.0, -30.0, 0.0], "rowsum-softplus-minus-weighted"),  # 30.000... - 30
    ("split", [0.0, 1.0, 0.0], [800.0, -800.0, 3.0], "rowsum-softplus-minus-weighted"),  # inf - 800
    # y·(r - 1 - log r) at r = 1 + 2e-8: three terms of about 1 cancel to 2e-16 (naive: 3e15 ulps)
    ("genkl", [1.3359310321640003, 2.4723350719778594, 0.0], [1.3359310040107166, 2.4723350735071907, 0.5], "log-ratio-gap"),
    ("isd", [1.3359310321640003, 2.4723350719778594, 3.0], [1.3359310040107166, 2.4723350735071907, 30.0], "log-ratio-gap"),
    # two KL terms of ±1e-12 that cancel to 1e-20 (the naive value -5.5e-17: a negative divergence)
    ("bkl", [0.3, 0.7, 0.5], [0.30000000000099997, 0.6999999999, 0.5], "log-ratio-gap"),
]


@pytest.mark.parametrize("variant, labels, pred, rule", MORE_POINTS, ids=[f"{a}:{c}" for a, _, c, _ in MORE_POINTS])
def test_more_shapes_stable_where_the_naive_form_breaks(generated_more, variant, labels, pred, rule):
    ns, losses = generated_more
    loss = losses[f"more.{variant}"]
    assert rule in [r.name for r in derive(loss).value_rules]
    value, grad = _run(ns[f"{variant}_value_and_grad"], labels, pred)
    true_v, true_g = RowReference(loss, 3).value_and_grad(labels, pred, ())
    _within_contract(loss, value, grad, labels, pred, (), true_v, true_g)
    nv = float(np.ravel(_run(ns[f"{variant}_naive_value"], labels, pred)[0])[0])
    ng = np.ravel(_run(ns[f"{variant}_naive_grad"], labels, pred)[0])
    errors = [ulp_error(nv, true_v, np.float64)] + [ulp_error(a, b, np.float64) for a, b in zip(ng, true_g)]
    assert max(errors) > 1e6, errors  # the naive form: inf, NaN, or most digits lost


def test_log_ratio_gap_at_the_ends_of_its_ratio(generated_more):
    """The branches of log-ratio-gap away from r = 1 keep the ends: the generalised KL at a label
    of 0 is p (its label weight guards 0·log 0 in the branch as written), Itakura–Saito at p = 0 is
    +inf (as written, y/p - log(y/p) is inf - inf there: the r > 4 branch k·r·(1 - s + s·log s)),
    and both are exactly 0 at r = 1."""
    ns, _ = generated_more
    gk = np.ravel(_run(ns["genkl_value"], [0.0, 0.0, 2.5], [0.25, 5e-324, 2.5])[0])[0]
    assert gk == 0.25 + 5e-324
    for lab, pred in (([1.0, 0.5, 3.0], [0.0, 0.5, 3.0]), ([5e-324, 1.0, 1.0], [0.0, 1.0, 1.0])):
        v = np.ravel(_run(ns["isd_value"], lab, pred)[0])[0]
        assert v == np.inf, (lab, pred, v)
    assert np.ravel(_run(ns["isd_value"], [0.5, 2.0, 3.0], [0.5, 2.0, 3.0])[0])[0] == 0.0


GLM = HEADER + """
yp = Elem("y", positive=True)
b = Symbol("b", positive=True)
LOSSES = [
    Loss(family="glm", variant="gamma", title="gamma deviance, mean over the row",
         value=RowSum(2*(log(p/yp) + yp/p - 1))/C, prediction=p, label=yp, domain="probability"),
    Loss(family="glm", variant="gumbel", title="Gumbel negative log-likelihood in its location",
         value=RowSum(log(b) + (y - x)/b + exp(-(y - x)/b))/C, prediction=x, label=y, params=(b,),
         param_ranges={b: (0.5, 5.0)}),
]
"""


def test_glm_deviances_at_the_ends_and_an_expm1_with_a_scale(tmp_path_factory):
    """The gamma deviance's gradient 2(p - y)/(p²·C) is printed ((p - y)/p)/p: p² overflowed past
    p = 1.3e154 and the gradient came out 0 (1e-200 at p = 1e200); its value is 0 at r = 1 and near
    r = 1 within the contract. The Gumbel likelihood's gradient (e^(-z) - 1)/(b·C) is expm1(-z)/(b·C):
    the sum lost every digit of z = 1e-10 (1e-10/b·C, where it gave 1.1e-10)."""
    modules, losses = _generate_files(tmp_path_factory, "glm", {"glm": GLM})
    ns = modules["glm"]
    g = np.ravel(_run(ns["gamma_grad"], [1.0, 3.0], [1e200, 3.0])[0])
    assert g[0] == pytest.approx(2 * (1e200 - 1.0) / 1e200 / 1e200 / 2, rel=1e-15) and g[1] == 0.0
    labels, pred = [1.3359310321640003, 2.4723350719778594], [1.3359310040107166, 2.4723350735071907]
    value, grad = _run(ns["gamma_value_and_grad"], labels, pred)
    true_v, true_g = RowReference(losses["glm.gamma"], 2).value_and_grad(labels, pred, ())
    _within_contract(losses["glm.gamma"], value, grad, labels, pred, (), true_v, true_g)
    assert "expm1" in [r.name for r in derive(losses["glm.gumbel"]).grad_rules]
    gz = np.ravel(_run(ns["gumbel_grad"], [1e-10, 0.0], [0.0, 0.0], (2.0,))[0])
    assert gz[0] == pytest.approx(mpmath.mpf(1) * float(mpmath.expm1(-0.5e-10)) / 4, rel=1e-15) and gz[1] == 0.0


def test_bernoulli_kl_near_its_minimum_to_a_few_ulps(generated_more):
    """Near y = p the Bernoulli KL is a sum of two gaps y·G(p/y - 1) + (1 - y)·G((1 - p)/(1 - y) - 1),
    each from log((1 - p)/(1 - y)) with (1 - p) - (1 - y) read through the weight one_minus_y as
    y - p (the lowering knows the weights' definitions): 1 - p and 1 - y rounded first lose the
    digits of y - p (1e-4 relative at y - p = 1e-12), which κ ≈ 1e12 would excuse but need not."""
    ns, _ = generated_more
    labels, pred = [0.3, 0.7, 0.5], [0.30000000000099997, 0.6999999999, 0.5]
    v = float(np.ravel(_run(ns["bkl_value"], labels, pred)[0])[0])
    with mpmath.workdps(60):
        y, q = [mpmath.mpf(a) for a in labels], [mpmath.mpf(a) for a in pred]
        exact = sum(a * mpmath.log(a / b) + (1 - a) * mpmath.log((1 - a) / (1 - b)) for a, b in zip(y, q)) / 3
    assert ulp_error(v, exact, np.float64) <= 4, (v, exact)


def test_normalised_squared_error_where_its_sums_of_squares_are_out_of_range(generated_more):
    """Σ(p - y)²/Σy² at rows of 1e200 (both sums overflow) and 1e-200 (both underflow): 0.5 and
    the gradient 2(p - y)/Σy², where the plain quotient gave 0 (1/Σy² first, 0 at 1e200)."""
    ns, losses = generated_more
    for scale in (1e200, 1e-200, 1.0):
        labels, pred = [scale, scale, 0.0], [2 * scale, scale, 0.0]
        value, grad = _run(ns["nse_value_and_grad"], labels, pred)
        # (the norms' form: four roundings, the two square roots' halved: a few ulps)
        assert ulp_error(float(np.ravel(value)[0]), mpmath.mpf(0.5), np.float64) <= 4
        assert ulp_error(float(np.ravel(grad)[0]), 1 / mpmath.mpf(scale), np.float64) <= 4 and np.ravel(grad)[1] == 0.0
