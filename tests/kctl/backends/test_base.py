"""The seam shared by every backend: dry runs and template rendering."""

from __future__ import annotations

import os

import pytest

from kctl.backends import base


@pytest.fixture
def fresh_environment(monkeypatch):
    """Each test builds its own Jinja2 environment (and so reads the cache settings anew)."""
    monkeypatch.setattr(base, "_ENV", None)


def _render() -> str:
    return base.render_template("torchrun.j2", max_restarts=0, standalone=True, nproc_per_node=2,
                                module="trainer", trainer_args=["cfg.py", "--resume"])


def test_dry_run_request_is_made_on_first_use_only():
    calls = []
    dryrun = base.DryRun("x", "a b", parse=lambda text: calls.append(text) or text.split())
    assert str(dryrun) == "a b" and calls == []
    assert dryrun.request == ["a", "b"] and dryrun.request == ["a", "b"]
    assert calls == ["a b"]


def test_compiled_templates_are_cached_and_used_again(fresh_environment, monkeypatch, tmp_path):
    monkeypatch.setenv(base.CACHE_ENV, str(tmp_path / "cache"))
    first = _render()
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].stat().st_size > 0
    monkeypatch.setattr(base, "_ENV", None)
    stamp = cached[0].stat().st_mtime_ns
    assert _render() == first
    assert first.strip() == ("torchrun --standalone --nnodes=1 --nproc-per-node=2 -m trainer "
                             "cfg.py --resume")
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not compiled and written again


def test_an_edited_template_is_compiled_again(fresh_environment, monkeypatch, tmp_path):
    monkeypatch.setenv(base.CACHE_ENV, str(tmp_path))
    bucket = base._environment().bytecode_cache.get_bucket
    env = base._environment()
    one = bucket(env, "t.j2", None, "one {{ x }}")
    two = bucket(env, "t.j2", None, "two {{ x }}")
    assert one.checksum != two.checksum


def test_an_unwritable_cache_is_only_slower(fresh_environment, monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv(base.CACHE_ENV, str(blocked / "cache"))
    assert _render().startswith("torchrun --standalone")
    if os.geteuid() != 0:  # root writes anywhere
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o500)
        monkeypatch.setattr(base, "_ENV", None)
        monkeypatch.setenv(base.CACHE_ENV, str(readonly))
        assert _render().startswith("torchrun --standalone")


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv(base.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert base.cache_dir() == str(tmp_path / "kctl" / "templates")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert base.cache_dir() == str(tmp_path / ".cache" / "kctl" / "templates")
    monkeypatch.setenv(base.CACHE_ENV, "")
    assert base.cache_dir() is None


def test_no_cache_when_turned_off(fresh_environment, monkeypatch):
    monkeypatch.setenv(base.CACHE_ENV, "")
    assert base._environment().bytecode_cache is None
    assert _render().startswith("torchrun --standalone")
