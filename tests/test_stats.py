"""tinychar/stats.py: Student's t and Welch's intervals, held to published tables and to their
definitions, so the studies' verdicts rest on known arithmetic."""
import math
import statistics

import pytest

from tinychar.stats import mean_std, student_t_cdf, student_t_quantile, t_interval, welch_contrast, welch_interval


@pytest.mark.parametrize("df,quantile", [(1, 12.7062), (4, 2.7764), (10, 2.2281), (30, 2.0423), (1000, 1.9623)])
def test_student_t_quantiles_match_the_tables(df, quantile):
    assert student_t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-4)


def test_welch_interval_of_the_heads_effect_holds_zero():
    # the first study's 4 vs 1 heads: -0.0174, which its table had called "better"
    w = welch_interval([2.1646, 2.1580, 2.1461], [2.1837, 2.1717, 2.1655])
    assert w["diff"] == pytest.approx(-0.0174)
    assert w["se"] == pytest.approx(math.sqrt(statistics.variance([2.1646, 2.1580, 2.1461]) / 3
                                              + statistics.variance([2.1837, 2.1717, 2.1655]) / 3))
    assert w["df"] == pytest.approx(4.0, abs=0.01) and w["low"] < 0 < w["high"]
    w = welch_interval([2.1646, 2.1580, 2.1461], [2.5516, 2.5383, 2.5330])   # positions: far from 0
    assert w["high"] < -0.3
    w = welch_contrast([([1.0, 2.0, 3.0], 2), ([5.0, 5.5], -0.5)])   # weights scale mean and spread alike
    assert w["diff"] == pytest.approx(4.0 - 2.625)
    assert w["se"] == pytest.approx(math.sqrt(4 * 1.0 / 3 + 0.25 * 0.125 / 2))


def test_the_t_distribution_is_symmetric_and_its_cdf_inverts_its_quantile():
    for df in (1, 2, 4.6, 30):
        assert student_t_cdf(0.0, df) == pytest.approx(0.5)
        assert student_t_cdf(-1.3, df) == pytest.approx(1 - student_t_cdf(1.3, df))
        assert student_t_cdf(student_t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-9)
    assert student_t_cdf(1.0, 1) == pytest.approx(0.75)   # Cauchy: 1/2 + atan(1)/pi


def test_a_t_interval_is_the_mean_plus_or_minus_t_times_the_standard_error():
    values = [2.1701, 2.1714, 2.1514]
    mean, half = t_interval(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert half == pytest.approx(4.3027 * statistics.stdev(values) / math.sqrt(3), rel=1e-4)   # t_0.975 at 2 df
    assert mean_std(values) == (statistics.mean(values), statistics.stdev(values))
    assert mean_std([2.5]) == (2.5, None)   # one value: no spread
