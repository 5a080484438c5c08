"""kubectl-shaped output: ages and tables."""

from datetime import datetime, timezone

import pytest

from kctl.k8s.display import age, human_duration, table


@pytest.mark.parametrize("seconds, shown", [
    (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (150, "2m30s"),
    (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 120, "3h2m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (49 * 3600, "2d1h"),
    (8 * 86400, "8d"), (729 * 86400, "729d"), (730 * 86400, "2y"), (731 * 86400, "2y1d"),
    (8 * 365 * 86400, "8y"),
])
def test_human_duration_matches_kubectl(seconds, shown):
    assert human_duration(seconds) == shown


def test_age_of_api_timestamps():
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert age("2024-05-01T11:55:00Z", now) == "5m"
    assert age(None, now) == age("not a time", now) == "<unknown>"


def test_table_pads_columns_like_kubectl_get():
    assert table(["NAME", "STATE"], [["a-long-name", "Running"], ["b", "-"]]) == (
        "NAME          STATE\n"
        "a-long-name   Running\n"
        "b             -")
