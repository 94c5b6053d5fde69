"""Raw exception texts of third-party readers become phrases about the file (issue 16)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.errors import describe_exception, json_kind


def _raised(fn) -> BaseException:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - the test collects what a reader raises
        return exc
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize(
    ("exc", "phrase"),
    [
        (StopIteration(), "the file ends early or a line has too few fields"),
        (EOFError("No data left in file"), "the file ends early or a line has too few fields"),
        (AssertionError(), "its content does not follow the format"),
        (_raised(lambda: [][1]), "the file ends early or a line has too few fields"),
        (_raised(lambda: int("x")), "'x' stands where a number is expected"),
        (_raised(lambda: float("abc")), "'abc' stands where a number is expected"),
        (
            _raised(lambda: np.array([[1.0], [2.0, 3.0]])),
            "a block holds the wrong number of values (rows of different lengths)",
        ),
        (_raised(lambda: json.loads("")), "the file is empty"),
        (_raised(lambda: json.loads('{"a": 1,')), "line 1, column 9: expecting property name"),
        (_raised(lambda: b"\xff\xfe".decode("utf-8")), "it is a binary file, not text"),
        (KeyError("Unable to synchronously open object (object 'error' doesn't exist)"), "the entry 'error'"),
        (_raised(lambda: None.shape), "its content does not follow the format"),
        (
            OSError("Unable to synchronously open file (file signature not found)"),
            "no HDF5 signature: it is not an HDF5 file",
        ),
        (
            OSError("Unable to synchronously open file (truncated file: eof = 156116, stored_eof = 312232)"),
            "the file is truncated (shorter than its HDF5 header says)",
        ),
        (
            OSError("Unable to synchronously open file (bad object header version number)"),
            "bad object header",
        ),
        (ValueError("The number of scaling factors must be 1 or 3."), "The number of scaling factors"),
    ],
)
def test_describe_exception_names_the_file_problem(exc, phrase):
    text = describe_exception(exc)
    assert text.startswith(phrase), text
    assert not text.endswith("."), text
    for raw in ("StopIteration", "AssertionError", "index out of range", "inhomogeneous", "NoneType"):
        assert raw not in text


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "null"),
        (True, "boolean"),
        (3, "number"),
        (2.5, "number"),
        ("a", "string"),
        ([], "array"),
        ({}, "object"),
    ],
)
def test_json_kind(value, kind):
    assert json_kind(value) == kind
