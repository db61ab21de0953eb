"""Views show the profile's own checks by another framework's ids, never copies of them."""

from __future__ import annotations

import pytest
import yaml

from auditor.views import available_views, load_named, load_view

BASE = load_named("nist-800-190")
VIEWS = {path.stem: path for path in available_views()}


def test_the_five_views_exist():
    assert set(VIEWS) == {
        "cis-docker",
        "cis-kubernetes",
        "cis-linux",
        "pss-baseline",
        "pss-restricted",
    }


@pytest.mark.parametrize(
    "name, key, values",
    [
        ("cis-docker", "cis_docker", None),
        ("cis-kubernetes", "cis_kubernetes", None),
        ("cis-linux", "cis_linux", None),
        ("pss-baseline", "pss", {"baseline"}),
        ("pss-restricted", "pss", {"baseline", "restricted"}),
    ],
)
def test_each_view_lists_exactly_the_checks_that_carry_its_references(name, key, values):
    view = load_named(name)
    expected = {
        c.id
        for c in BASE.checks
        if (refs := set(getattr(c.check.references, key))) and (values is None or refs & values)
    }
    assert expected, f"no check carries {key}"
    ids = [c.id for c in view.checks]
    assert len(ids) == len(set(ids))  # each check once, however many ids it carries
    assert set(ids) == expected


def test_view_checks_are_the_profile_definitions_not_copies():
    by_id = {c.id: c for c in BASE.checks}
    for name in VIEWS:
        for check in load_named(name).checks:
            assert check.check == by_id[check.id].check
            assert check.assertion.source == by_id[check.id].assertion.source
    for path in VIEWS.values():
        text = path.read_text()
        assert "assert" not in yaml.safe_load(text) and "checks" not in yaml.safe_load(text)


@pytest.mark.parametrize("name, key", [("cis-docker", "cis_docker"), ("cis-linux", "cis_linux")])
def test_cis_view_orders_controls_by_benchmark_number(name, key):
    view = load_named(name)
    ids = [e.control.id for e in view.controls]
    numeric = [tuple(int(p) for p in i.split(".")) for i in ids]
    assert numeric == sorted(numeric)
    assert view.sections[0].title.startswith("1 ")
    for entry in view.controls:
        assert all(entry.control.id in getattr(c.references, key) for c in entry.control.checks)


def test_cis_linux_view_groups_host_checks_by_benchmark_section():
    """Sections are the benchmark's chapters (1 Initial setup .. 7 System maintenance), and
    a check is listed under the lowest item it refers to, wherever it sits in 800-190."""
    view = load_named("cis-linux")
    titles = {s.id: s.title for s in view.sections}
    assert set(titles.values()) <= {
        "1 Initial setup",
        "2 Services",
        "3 Network",
        "4 Host based firewall",
        "5 Access control",
        "6 Logging and auditing",
        "7 System maintenance",
    }
    by_check = {c.id: (c.control_id, titles[c.section_id]) for c in view.checks}
    assert by_check["host.sshd.no-root-login"] == ("5.1.20", "5 Access control")
    assert by_check["host.files.identity-perms"] == ("7.1.1", "7 System maintenance")
    assert by_check["host.sysctl.randomize-va-space"] == ("1.5.1", "1 Initial setup")
    assert all(c.check.target == "host" for c in view.checks)


def test_overlays_do_not_apply_to_views(tmp_path):
    from auditor.errors import ProfileError

    overlay = tmp_path / "o.yaml"
    overlay.write_text("extends: nist-800-190\n")
    with pytest.raises(ProfileError, match="overlays change profiles, not views"):
        load_named("cis-docker", [overlay])


def test_views_load_through_the_cli(auditor_cli):
    listed = auditor_cli("profiles", "list")
    assert listed.code == 0
    for name in VIEWS:
        assert name in listed.out
    shown = auditor_cli("profiles", "show", "pss-restricted")
    assert shown.code == 0 and "4.4.3" in shown.out
    assert load_view(VIEWS["cis-kubernetes"]).id == "cis-kubernetes"
