"""The kernels' plain-int status codes mirror :class:`cnnmft.Status` exactly."""

from cnnmft._kernels import _codes
from cnnmft.results import Status


def test_codes_mirror_status():
    for name in _codes.NAMES:
        assert getattr(_codes, name) == int(Status[name]), name


def test_codes_are_status_members():
    assert set(_codes.NAMES) <= {s.name for s in Status}
    assert {"OK", "BISTABLE", "UNSTABLE", "INTERRUPTED", "NONFINITE"} <= set(_codes.NAMES)


def test_new_members():
    assert Status.BISTABLE > 0 and Status.UNSTABLE > 0  # special outcomes, values reported
    assert Status.INTERRUPTED < 0  # a failure: outputs not computed
    assert len({int(s) for s in Status}) == len(Status)
