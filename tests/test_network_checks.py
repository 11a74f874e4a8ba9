"""The network rows of the validation table run and pass (quick sizes)."""

import pytest

from cnnmft._network_checks import NETWORK_CHECKS
from cnnmft.checks import CheckResult, Verdict


@pytest.mark.parametrize("name", sorted(NETWORK_CHECKS))
def test_network_check_passes(name):
    res = NETWORK_CHECKS[name](quick=True, rng=0)
    assert isinstance(res, CheckResult) and res.name == name and res.group == "network"
    assert res.status == Verdict.PASS, res.row()
    assert res.n_compared > 0 and res.z <= res.z_crit
