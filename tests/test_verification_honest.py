"""Verification cannot pass by accident: NaN or inf where the other side is finite fails and says where,
and a report with nothing checked is 'unverified', never 'passed' (issue: honest to the last digit)."""

import json

import numpy as np
import torch

import poolport
from poolport.plan import plan_pool
from poolport.verify.compare import compare, difference
from poolport.verify.in_pytorch import site_problems
from poolport.verify.recorder import SiteRecorder


def test_nan_in_the_runtime_output_fails_and_says_where():
    check = compare([torch.tensor([1.0, 2.0, 3.0])], [np.array([1.0, 2.5, np.nan])], 1e-4, "example inputs", "ort")
    assert not check.passed and check.max_abs_error == float("inf")
    assert "index (2,)" in check.note and "nan" in check.note


def test_inf_where_the_reference_is_finite_fails():
    err, _, problem = difference(np.array([[1.0, 2.0]]), np.array([[1.0, np.inf]]))
    assert err == float("inf") and "(0, 1)" in problem


def test_matching_non_finite_cells_are_not_an_error():
    err, scale, problem = difference(np.array([1.0, np.inf, np.nan]), np.array([1.0, np.inf, np.nan]))
    assert (err, scale, problem) == (0.0, 1.0, "")


def test_a_site_whose_portable_result_has_nan_fails():
    rec = SiteRecorder()
    x = torch.randn(1, 1, 9, 9)
    native = torch.nn.functional.adaptive_avg_pool2d(x, 7)
    portable = native.clone()
    portable[0, 0, 3, 3] = float("nan")
    rec.record("head", "adaptive_avg_pool2d", x, (7, 7), plan_pool("avg", (9, 9), (7, 7)), portable, native)
    problems = site_problems(rec.ordered())
    assert problems and "non-finite" in problems[0] and "head" in problems[0]


def test_nothing_checked_is_unverified_not_passed(tmp_path):
    report = poolport.export_onnx(torch.nn.AdaptiveAvgPool2d(3), torch.randn(1, 2, 9, 9), tmp_path / "m.onnx",
                                  verify=False, report=tmp_path / "r.json")
    assert report.status == "unverified" and not report.passed
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["status"] == "unverified" and data["passed"] is False and data["checks"] == []
