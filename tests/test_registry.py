"""The one registry helper: decorator registration, one-line lookup errors, listing, loading."""

from __future__ import annotations

import pytest

from router_lab.errors import RouterLabError
from router_lab.registry import Registry


def test_a_decorated_entry_is_found_listed_and_summarised():
    reg: Registry = Registry("thing", field="thing.name")

    @reg.register("beta", schema=dict, colour="blue")
    class Beta:
        """The second letter."""

    reg.register("alpha", len)
    assert reg.get("beta") is Beta and reg.get("alpha") is len
    assert reg.names() == ["alpha", "beta"] and "beta" in reg and len(reg) == 2
    entry = reg.entry("beta")
    assert (entry.schema, entry.summary, entry.meta) == (dict, "The second letter.", {"colour": "blue"})
    assert reg.help_lines()[1] == "beta   The second letter."


def test_an_unknown_name_is_one_line_naming_the_field_and_the_options():
    reg: Registry = Registry("thing", field="thing.name")
    reg.register("b", 1)
    reg.register("a", 2)
    with pytest.raises(RouterLabError, match=r"^thing.name: got 'c'; expected one of a, b$"):
        reg.get("c")
    with pytest.raises(RouterLabError, match="got 3;"):
        reg.get(3)


def test_two_objects_claiming_one_name_is_refused_and_a_reregistration_is_not():
    reg: Registry = Registry("thing", field="thing.name")
    reg.register("x", len)
    reg.register("x", len)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x", abs)
    reg.unregister("x")
    reg.register("x", abs)
    assert reg.get("x") is abs


def test_modules_are_imported_at_first_use_and_a_package_imports_every_submodule():
    reg: Registry = Registry("thing", field="thing.name", modules=("router_lab.export.targets",))
    assert reg._loaded is False
    import sys

    reg.load()
    assert "router_lab.export.targets.web" in sys.modules and "router_lab.export.targets.int8" in sys.modules
