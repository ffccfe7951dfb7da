"""The statistics the studies' verdicts rest on: a mean with its spread, Student's t, and Welch's
interval for a difference of means (or a weighted sum of them) between independent groups of runs.

Written out here rather than taken from SciPy, so the suite needs only the packages the toolkit
uses; tests/test_stats.py holds them to published tables.
"""
import math
import statistics


def mean_std(values):
    if len(values) < 2:
        return values[0], None
    return statistics.mean(values), statistics.stdev(values)


def t_interval(values, level=0.95):
    """(mean, half-width of its two-sided Student's t interval): mean ± t_{n-1} * sd / sqrt(n)."""
    n = len(values)
    return statistics.mean(values), student_t_quantile(1 - (1 - level) / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)


def student_t_cdf(t, df):
    """P(T <= t) for Student's t with df (real) degrees of freedom, through the regularised
    incomplete beta function: P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2)."""
    x = df / (df + t * t)
    tail = 0.5 * incomplete_beta(x, df / 2, 0.5)
    return 1 - tail if t >= 0 else tail


def incomplete_beta(x, a, b):
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
    Lentz's method), on the side where it converges fast."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1 - incomplete_beta(1 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)) / a
    tiny = 1e-300
    c, d, f = 1.0, 0.0, 1.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 + numerator * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1 + numerator / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1 - c * d) < 1e-12:
            break
    return front * (f - 1)


def student_t_quantile(p, df):
    """The t with P(T <= t) = p (p > 0.5), by bisection."""
    lo, hi = 0.0, 1e4
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def welch_interval(a, b, level=0.95):
    """Difference of means a - b with its Welch standard error, degrees of freedom and confidence
    interval: dict(diff, se, df, low, high). Needs two or more values on each side."""
    return welch_contrast([(a, 1), (b, -1)], level)


def welch_contrast(groups, level=0.95):
    """A weighted sum of group means, sum(w_i * mean_i), e.g. a difference of two differences
    (weights +1 and -1), with its standard error sqrt(sum w_i^2 var_i / n_i), Welch-Satterthwaite
    degrees of freedom and confidence interval: dict(diff, se, df, low, high). Each group needs two
    or more values; the groups are taken as independent (separate runs)."""
    parts = [weight ** 2 * statistics.variance(values) / len(values) for values, weight in groups]
    se = math.sqrt(sum(parts))
    df = sum(parts) ** 2 / sum(part ** 2 / (len(values) - 1) for part, (values, _) in zip(parts, groups))
    diff = sum(weight * statistics.mean(values) for values, weight in groups)
    half = student_t_quantile(1 - (1 - level) / 2, df) * se
    return dict(diff=diff, se=se, df=df, low=diff - half, high=diff + half)


def paired_interval(pairs, level=0.95):
    """The mean of per-pair differences a - b (runs that share a seed: the same initial weights and
    batches) with its t interval: dict(diff, low, high, n). Needs two or more pairs."""
    diff, half = t_interval([a - b for a, b in pairs], level)
    return dict(diff=diff, low=diff - half, high=diff + half, n=len(pairs))
