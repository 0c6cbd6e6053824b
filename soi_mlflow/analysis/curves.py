"""Multi-task learning curves (docs/design.md): parametric fits and what auxiliary data is worth.

Forms, in the score y of a target at its training-set size n:
- power law    y = c - a * n**(-b)
- exponential  y = c - exp(b - a * n)
- contextual   y = c - exp(b - a_t * n_t - a_x * n_x), with n_x the auxiliary examples.
Fits use scipy's ``curve_fit`` (standard errors from the covariance); the better of the
first two is chosen by AIC. In the contextual form n_x auxiliary examples act like
(a_x / a_t) * n_x target examples. The contextual form is fitted only on a design that
identifies it (``contextual_design_problem``): at least 3 target sizes and the auxiliary
data at 2 or more sizes; with one auxiliary size, a_x rests on a single jump that
confounds "how much auxiliary data" with "any auxiliary task at all".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, brentq, curve_fit

from soi_mlflow.errors import SoiInputError

FORMS = ("power_law", "exponential")


def power_law(n, c, a, b):
    return c - a * np.power(n, -b)


def exponential(n, c, a, b):
    return c - np.exp(b - a * n)


def contextual(x, c, b, a_t, a_x):
    n_t, n_x = x
    return c - np.exp(b - a_t * n_t - a_x * n_x)


@dataclass
class Fit:
    form: str
    params: dict[str, float]
    stderr: dict[str, float]
    rss: float
    points: int
    names: tuple[str, ...] = field(default=())
    cov: np.ndarray | None = None  # covariance of the parameters, in ``names`` order
    at_bounds: dict[str, float] = field(default_factory=dict)  # parameters on a bound

    @property
    def problem(self) -> str | None:
        """Why this fit did not converge, or None: the optimiser stopped on a parameter's
        bound (an asymptote of 2.0, a flat curve), so the points do not determine it."""
        if not self.at_bounds:
            return None
        where = ", ".join(f"{k} = {v:.3g}" for k, v in self.at_bounds.items())
        return f"the {self.form} fit ran to its bound ({where}): the points do not determine it"

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Wald interval of one parameter (Student t with points - parameters dof)."""
        from scipy.stats import t

        dof = max(self.points - len(self.params), 1)
        half = float(t.ppf(0.5 + level / 2, dof)) * self.stderr[name]
        return self.params[name] - half, self.params[name] + half

    @property
    def aic(self) -> float:
        k = len(self.params)
        return self.points * np.log(max(self.rss, 1e-300) / self.points) + 2 * k

    def predict(self, n) -> np.ndarray:
        p = self.params
        if self.form == "power_law":
            return power_law(np.asarray(n, float), p["c"], p["a"], p["b"])
        return exponential(np.asarray(n, float), p["c"], p["a"], p["b"])


def _check(n: np.ndarray, y: np.ndarray, minimum: int) -> None:
    if len(np.unique(n)) < minimum:
        raise SoiInputError(
            f"a curve fit needs at least {minimum} different sizes, got {len(np.unique(n))}"
        )


def fit_curve(n, y, form: str) -> Fit:
    """Least-squares fit of one form to points (n, y)."""
    n, y = np.asarray(n, float), np.asarray(y, float)
    _check(n, y, 3)
    c0 = float(y.max()) + 0.02
    gap = max(c0 - float(y.min()), 1e-3)
    if form == "power_law":
        func, p0 = power_law, [c0, gap * n.min() ** 0.5, 0.5]
        bounds = ([-1.0, 0.0, 1e-4], [2.0, np.inf, 5.0])
    elif form == "exponential":
        a0 = 1.0 / float(np.median(n))
        func, p0 = exponential, [c0, a0, np.log(gap) + a0 * n.min()]
        bounds = ([-1.0, 0.0, -50.0], [2.0, np.inf, 50.0])
    else:
        raise SoiInputError(f"unknown curve form {form!r}; forms: {', '.join(FORMS)}")
    with warnings.catch_warnings():  # an unestimable covariance shows as infinite stderr
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, pcov = curve_fit(func, n, y, p0=p0, bounds=bounds, maxfev=20000)
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    names = ("c", "a", "b")
    rss = float(((func(n, *popt) - y) ** 2).sum())
    return Fit(
        form,
        dict(zip(names, map(float, popt), strict=True)),
        dict(zip(names, map(float, err), strict=True)),
        rss,
        len(n),
        names,
        np.asarray(pcov, float),
        _on_bounds(names, popt, bounds),
    )


def _on_bounds(names, values, bounds) -> dict[str, float]:
    """The parameters the optimiser left on a (finite) bound: within 0.5 % of the
    parameter's range (the trust-region optimiser stops just inside it)."""
    out = {}
    for name, value, low, high in zip(names, values, *bounds, strict=True):
        span = high - low if np.isfinite(high - low) else 0.0
        for edge in (low, high):
            tolerance = max(5e-3 * span, 1e-6 * max(1.0, abs(edge)))
            if np.isfinite(edge) and abs(value - edge) <= tolerance:
                out[name] = float(value)
    return out


def best_fit(n, y) -> Fit:
    """The power law or the exponential, whichever has the lower AIC among the fits that
    converged (none on a bound: :attr:`Fit.problem`)."""
    fits, problems = [], []
    for form in FORMS:
        try:
            fit = fit_curve(n, y, form)
        except (RuntimeError, ValueError):  # no fit found, or the start is infeasible
            continue
        if fit.problem:
            problems.append(fit.problem)
        else:
            fits.append(fit)
    if not fits:
        why = "; ".join(problems) if problems else "no fit was found"
        raise SoiInputError(f"neither curve form could be fitted to these points ({why})")
    return min(fits, key=lambda f: f.aic)


def contextual_design_problem(n_t, n_x) -> str | None:
    """Why points at (n_t, n_x) cannot identify ``c, b, a_t, a_x``; None when they can."""
    n_t, n_x = np.asarray(n_t, float), np.asarray(n_x, float)
    if len(np.unique(n_t)) < 3:
        return (
            f"the contextual fit needs at least 3 different target sizes, "
            f"got {sorted(set(n_t.tolist()))}"
        )
    positive = sorted(set(n_x[n_x > 0].tolist()))
    if len(positive) < 2:
        one = f"one auxiliary size ({positive[0]:g})" if positive else "no auxiliary data"
        return (
            f"the contextual fit cannot identify a_x with {one}: the auxiliary data must "
            "come at 2 or more sizes (learning-curve --aux-sizes), otherwise a_x rests on "
            "a single jump that confounds the amount of auxiliary data with its presence"
        )
    design = np.column_stack([np.ones_like(n_t), n_t, n_x])
    if np.linalg.matrix_rank(design / np.maximum(np.abs(design).max(axis=0), 1.0)) < 3:
        return (
            "the target and auxiliary sizes vary together (collinear): a_t and a_x are confounded"
        )
    return None


def fit_contextual(n_t, n_x, y) -> Fit:
    """The contextual form on points with and without auxiliary data; refused (with the
    reason) on a design that does not identify its parameters."""
    n_t, n_x, y = (np.asarray(v, float) for v in (n_t, n_x, y))
    problem = contextual_design_problem(n_t, n_x)
    if problem:
        raise SoiInputError(problem)
    c0 = float(y.max()) + 0.02
    scale = 1.0 / float(np.median(n_t))
    p0 = [c0, np.log(max(c0 - float(y.min()), 1e-3)), scale, scale / 10]
    bounds = ([-1.0, -50.0, 0.0, -np.inf], [2.0, 50.0, np.inf, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        popt, pcov = curve_fit(contextual, (n_t, n_x), y, p0=p0, bounds=bounds, maxfev=40000)
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    names = ("c", "b", "a_t", "a_x")
    if not np.all(np.isfinite(err)):
        raise SoiInputError(
            "the contextual fit is not identified by these points (singular covariance); "
            "add target or auxiliary sizes"
        )
    rss = float(((contextual((n_t, n_x), *popt) - y) ** 2).sum())
    return Fit(
        "contextual",
        dict(zip(names, map(float, popt), strict=True)),
        dict(zip(names, map(float, err), strict=True)),
        rss,
        len(y),
        names,
        np.asarray(pcov, float),
    )


def contextual_ratio(fit: Fit) -> tuple[float, float]:
    """a_x / a_t (target examples one auxiliary example is worth) and its standard error
    by the delta method from the fit's covariance."""
    a_t, a_x = fit.params["a_t"], fit.params["a_x"]
    if a_t <= 0 or fit.cov is None:
        return float("nan"), float("nan")
    ratio = a_x / a_t
    i_t, i_x = fit.names.index("a_t"), fit.names.index("a_x")
    grad = np.zeros(len(fit.names))
    grad[i_t], grad[i_x] = -a_x / a_t**2, 1.0 / a_t
    return ratio, float(np.sqrt(max(grad @ fit.cov @ grad, 0.0)))


def worth_from_contextual(fit: Fit, n_x: float) -> float:
    """Target examples that ``n_x`` auxiliary examples are worth: (a_x / a_t) * n_x."""
    return fit.params["a_x"] / fit.params["a_t"] * n_x if fit.params["a_t"] > 0 else float("nan")


def worth_from_curve(alone: Fit, n: float, score_with_aux: float) -> float:
    """n_eq - n, where the target alone reaches ``score_with_aux`` at n_eq examples;
    +inf when the alone curve never gets there, negative when the aux data hurt."""
    if score_with_aux >= alone.params["c"]:
        return float("inf")
    low = 1e-3
    if float(alone.predict(low)) >= score_with_aux:
        return low - n
    high = max(n, 1.0)
    while float(alone.predict(high)) < score_with_aux:
        high *= 2
        if high > 1e12:
            return float("inf")
    return brentq(lambda m: float(alone.predict(m)) - score_with_aux, low, high) - n
