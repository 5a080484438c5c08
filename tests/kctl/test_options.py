"""The option table: kctl train's flags, their checks and each kind's options come from it."""

import pytest

from kctl import options
from kctl.backends import kubernetes_backends
from kctl.cli import build_parser
from kctl.errors import UsageError


def _train_flags() -> dict:
    parser = build_parser("train").commands["train"]
    return {flag: action for action in parser._actions for flag in action.option_strings}


def test_every_option_is_a_kctl_train_flag_with_its_help_and_metavar():
    flags = _train_flags()
    for option in options.OPTIONS:
        action = flags[option.flag]
        assert action.help.startswith(option.help)
        assert action.required is option.required
        if not option.switch:
            assert action.metavar == option.metavar
        if option.kinds != options.KINDS:
            assert action.help.endswith(f"({', '.join(option.kinds)} only)")


def test_each_backend_takes_the_rows_of_its_kind():
    for backend in kubernetes_backends():
        assert [o.name for o in backend.options()] == [
            o.name for o in options.OPTIONS if backend.kind in o.kinds]
    assert {b.kind for b in kubernetes_backends()} == set(options.KINDS)


@pytest.mark.parametrize("option", [o for o in options.OPTIONS if o.kinds != options.KINDS],
                         ids=lambda o: o.name)
def test_an_option_a_kind_does_not_take_is_refused_with_the_reason(option):
    assert option.refusal
    value = True if option.switch else "x"
    for kind in set(options.KINDS) - set(option.kinds):
        with pytest.raises(UsageError) as err:
            options.settings(kind, {option.name: value})
        assert str(err.value) == f"{option.flag} does not apply to a {kind}: {option.refusal}"


def test_chart_value_names_are_camel_case_unless_named():
    by_name = options.BY_NAME
    assert by_name["work_dir_pvc"].value == "workDirPvc"
    assert by_name["max_restarts"].value == "maxRestarts"
    assert by_name["storage_class"].value == "workDirStorageClass"
    assert by_name["image_pull_secret"].value == "image.pullSecrets"


def test_defaults_and_what_was_given():
    chosen = options.settings("PyTorchJob", {"cpu": "4", "gang": False, "max_restarts": 0,
                                             "label": ["a=1", "b=2", "a=3"]})
    assert chosen.given == {"cpu", "max_restarts", "label"}
    assert (chosen.cpu, chosen.max_restarts, chosen.gang) == ("4", 0, False)
    assert chosen.label == {"a": "3", "b": "2"}  # a repeated key keeps its last value
    assert chosen.shm_size == options.DEFAULT_SHM_SIZE
    assert chosen.node_selector == {} and chosen.image_pull_secret == []
    again = options.settings("PyTorchJob", {})
    assert again.label == {} and again.label is not chosen.label


def test_values_are_checked_before_the_kind_is_known():
    with pytest.raises(UsageError, match="--memory must be a Kubernetes quantity"):
        options.settings(None, {"memory": "lots", "gang": True})
    assert options.settings(None, {"gang": True}).gang is True  # kinds are not checked yet
