"""The complete example of the notifications user guide runs as printed."""

from __future__ import annotations

import pathlib
import re

from rpcframe.notify import hooks, schemas

GUIDE = pathlib.Path(__file__).parents[3] / "doc" / "source" / "user" / "notifications.rst"


def example() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    pattern = r"A complete example\n-+\n.*?\.\. code-block:: python\n\n(.*?)\n\S"
    block = re.search(pattern, text, re.S)
    assert block, "the guide has no complete example"
    return "\n".join(line[4:] for line in block.group(1).splitlines())


def test_the_complete_example_runs_and_its_assertion_holds(capsys):
    namespace: dict = {"__name__": "guide_example"}
    try:
        exec(compile(example(), str(GUIDE), "exec"), namespace)
    finally:
        if "note" in namespace:
            hooks.after_publish.disconnect(namespace["note"])
        schemas.default_registry.unregister("compute.instance.create.end")
    assert namespace["published"] == ["compute.instance.create.end"]
    assert "compute.instance.create.end {'instance_id': 'i-1'} from compute.host1@" in (
        capsys.readouterr().out
    )
