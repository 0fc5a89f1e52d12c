"""Probe selection by id, category, glob and ``all``, and errors for unknown names."""

from __future__ import annotations

import pytest

from redtier.errors import UnknownNameError
from redtier.probes import Category, load_library

LIBRARY = load_library()
ALL_IDS = [probe.id for probe in LIBRARY]


def selected_ids(selection: str | None) -> list[str]:
    return [probe.id for probe in LIBRARY.select(selection)]


@pytest.mark.parametrize("selection", [None, "", " , ", "all"])
def test_select_everything(selection: str | None) -> None:
    assert selected_ids(selection) == ALL_IDS


def test_select_by_id() -> None:
    assert selected_ids("jailbreak.grandma") == ["jailbreak.grandma"]


def test_select_by_category() -> None:
    ids = selected_ids("harmful")
    expected = [probe.id for probe in LIBRARY if probe.category == Category.HARMFUL]
    assert ids == expected
    assert "harmful.weapons" in ids
    assert all(probe_id.startswith("harmful.") for probe_id in ids)


def test_select_by_glob() -> None:
    ids = selected_ids("malicious_code.reverse_shell_*")
    assert ids == ["malicious_code.reverse_shell_python", "malicious_code.reverse_shell_bash"]


def test_glob_over_category() -> None:
    ids = selected_ids("malicious_code.*")
    assert ids == [probe.id for probe in LIBRARY if probe.category == Category.MALICIOUS_CODE]


def test_select_mixed_items_in_library_order() -> None:
    ids = selected_ids(" jailbreak.grandma , prompt_extraction,harmful.weapons ")
    expected_extraction = [p.id for p in LIBRARY if p.category == Category.PROMPT_EXTRACTION]
    assert ids == ["jailbreak.grandma", "harmful.weapons", *expected_extraction]


def test_overlapping_items_selected_once() -> None:
    ids = selected_ids("harmful,harmful.weapons,harmful.*")
    assert ids.count("harmful.weapons") == 1
    assert len(ids) == len(set(ids))


def test_all_with_other_items() -> None:
    assert selected_ids("all,jailbreak.grandma") == ALL_IDS


def test_unknown_id_suggests_close_id() -> None:
    with pytest.raises(UnknownNameError) as caught:
        LIBRARY.select("jailbreak.grandmother")
    assert caught.value.name == "jailbreak.grandmother"
    assert "jailbreak.grandma" in caught.value.suggestions
    assert "Did you mean" in str(caught.value)


def test_unknown_category_suggests_category() -> None:
    with pytest.raises(UnknownNameError) as caught:
        LIBRARY.select("harmfull")
    assert "harmful" in caught.value.suggestions


def test_unknown_item_fails_whole_selection() -> None:
    with pytest.raises(UnknownNameError) as caught:
        LIBRARY.select("harmful,jailbreak.nope_nothing,jailbreak.grandma")
    assert caught.value.name == "jailbreak.nope_nothing"


def test_glob_matching_nothing_raises() -> None:
    with pytest.raises(UnknownNameError, match="'nothing.\\*'"):
        LIBRARY.select("nothing.*")


def test_empty_category_is_unknown() -> None:
    """``imported`` is a category, but the bundled library has no probe in it."""
    with pytest.raises(UnknownNameError):
        LIBRARY.select("imported")


def test_error_message_explains_syntax() -> None:
    with pytest.raises(UnknownNameError, match="Select probes by id"):
        LIBRARY.select("zzz")


def test_get_unknown_suggests() -> None:
    with pytest.raises(UnknownNameError) as caught:
        LIBRARY.get("harmful.weapon")
    assert caught.value.suggestions[0] == "harmful.weapons"


def test_library_container_protocol() -> None:
    assert len(LIBRARY) == len(ALL_IDS)
    assert "jailbreak.grandma" in LIBRARY
    assert "jailbreak.nope" not in LIBRARY
