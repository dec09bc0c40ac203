"""etc/rpcframe.conf.sample is what oslo-config-generator makes of the options today."""

from __future__ import annotations

import pathlib

from oslo_config import generator

ROOT = pathlib.Path(__file__).parents[2]


def test_the_sample_configuration_is_up_to_date(tmp_path):
    output = tmp_path / "rpcframe.conf.sample"
    generator.main(
        [
            "--config-file",
            str(ROOT / "etc" / "rpcframe-config-generator.conf"),
            "--output-file",
            str(output),
        ]
    )
    committed = (ROOT / "etc" / "rpcframe.conf.sample").read_text()
    assert output.read_text() == committed, "run 'tox -e genconfig' and commit the sample"


def test_the_sample_lists_every_group():
    text = (ROOT / "etc" / "rpcframe.conf.sample").read_text()
    for group in (
        "[DEFAULT]",
        "[oslo_messaging_notifications]",
        "[oslo_messaging_rabbit]",
        "[rpcframe]",
    ):
        assert group in text
