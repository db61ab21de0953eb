"""The compiled-profile cache: used only while the files are unchanged and the entry is ours."""

import os
import pickle

import pytest
from test_profiles import CONTROLS, write_profile

from auditor import profile_cache, profiles
from auditor.errors import ProfileError
from auditor.expr import Scope
from auditor.profiles import load_profile


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


@pytest.fixture
def yaml_reads(monkeypatch):
    """How many profile files were parsed."""
    reads = []
    original = profiles.load_yaml

    def counting(path, error):
        reads.append(path.name)
        return original(path, error)

    monkeypatch.setattr(profiles, "load_yaml", counting)
    return reads


def profile_dir(tmp_path):
    directory = tmp_path / "p"
    directory.mkdir()
    return write_profile(directory)


def entries():
    return sorted(profile_cache.cache_dir().glob("*.pickle"))


def test_second_load_comes_from_the_cache_and_evaluates_the_same(tmp_path, yaml_reads):
    directory = profile_dir(tmp_path)
    first = load_profile(str(directory))
    assert yaml_reads == ["profile.yaml", "host.yaml"]
    assert len(entries()) == 1 and oct(entries()[0].stat().st_mode & 0o777) == "0o600"
    second = load_profile(str(directory))
    assert yaml_reads == ["profile.yaml", "host.yaml"]  # nothing parsed again
    assert second == first and second is not first
    check = second.checks[0]
    scope = Scope({"facts": {"host": {"os": {"id": "debian"}}}, "vars": second.variables})
    assert scope.evaluate(check.assertion) is True  # its CEL compiles on first use


def test_a_changed_file_is_loaded_again(tmp_path, yaml_reads):
    directory = profile_dir(tmp_path)
    load_profile(str(directory))
    (directory / "host.yaml").write_text(CONTROLS.replace("OS is allowed", "OS is approved"))
    assert load_profile(str(directory)).checks[0].check.title == "OS is approved"
    assert yaml_reads.count("host.yaml") == 2


def test_a_broken_file_is_an_error_even_after_a_good_load(tmp_path):
    directory = profile_dir(tmp_path)
    load_profile(str(directory))
    (directory / "host.yaml").write_text(CONTROLS.replace("facts.host.os.id", "facts.host.nope"))
    with pytest.raises(ProfileError, match="unknown fact 'host.nope'"):
        load_profile(str(directory))


def test_overlays_are_part_of_the_key(tmp_path):
    directory = profile_dir(tmp_path)
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("extends: mini\ndisable: [host.os.allowed]\n")
    assert load_profile(str(directory)).checks
    assert not load_profile(str(directory), [overlay]).checks
    assert load_profile(str(directory)).checks
    assert len(entries()) == 2


@pytest.mark.parametrize("spoil", ["group-writable", "corrupt", "not-a-profile"])
def test_an_untrusted_or_unreadable_entry_is_ignored(tmp_path, yaml_reads, spoil):
    directory = profile_dir(tmp_path)
    expected = load_profile(str(directory))
    (entry,) = entries()
    if spoil == "group-writable":
        entry.chmod(0o620)
    elif spoil == "corrupt":
        entry.write_bytes(entry.read_bytes()[:100])
    else:
        entry.write_bytes(pickle.dumps({"format": 1, "files": {}, "profile": "x"}))
    assert load_profile(str(directory)) == expected
    assert yaml_reads.count("host.yaml") == 2


def test_an_unwritable_cache_costs_nothing_but_time(tmp_path, cache_home, yaml_reads):
    cache_home.mkdir()
    cache_home.chmod(0o500)
    try:
        directory = profile_dir(tmp_path)
        if os.geteuid() == 0:  # root writes anyway; make the cache path a file instead
            cache_home.chmod(0o700)
            (cache_home / "auditor").write_text("not a directory")
        assert load_profile(str(directory)).checks
        assert load_profile(str(directory)).checks
        assert yaml_reads.count("host.yaml") == 2
    finally:
        cache_home.chmod(0o700)
