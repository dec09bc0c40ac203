"""confread.value reads an option as attribute access does, overrides and errors included."""

from __future__ import annotations

from unittest import mock

import pytest
from oslo_config import cfg

from rpcframe import confread


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    conf.register_opts([cfg.IntOpt("top", default=1)])
    conf.register_opts([cfg.IntOpt("inner", default=2)], group="section")
    return conf


def test_it_reads_defaults_and_overrides_in_both_groups(conf: cfg.ConfigOpts) -> None:
    assert confread.value(conf, "top") == 1
    assert confread.value(conf, "inner", "section") == 2
    conf.set_override("top", 10)
    conf.set_override("inner", 20, group="section")
    assert confread.value(conf, "top") == 10 == conf.top
    assert confread.value(conf, "inner", "section") == 20 == conf.section.inner
    conf.clear_override("inner", group="section")
    assert confread.value(conf, "inner", "section") == 2


@pytest.mark.parametrize(("name", "group"), [("missing", None), ("missing", "section"),
                                             ("inner", "no_such_group")])  # fmt: skip
def test_an_unknown_option_or_group_raises_no_such_opt(
    conf: cfg.ConfigOpts, name: str, group: str | None
) -> None:
    with pytest.raises(cfg.NoSuchOptError) as caught:
        confread.value(conf, name, group)
    assert name in str(caught.value)  # the message itself must render


def test_a_mock_configuration_is_read_by_attribute() -> None:
    fake = mock.Mock()
    fake.section.inner = 7
    fake.top = 3
    assert confread.value(fake, "inner", "section") == 7
    assert confread.value(fake, "top") == 3
