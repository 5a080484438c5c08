"""Single-value rules shared by the backends and the validators."""

from __future__ import annotations

import re

import pytest

from kctl.validate.limits import QUANTITY_PATTERN, config_map_key_error, data_size


def test_binary_data_counts_decoded_bytes():
    assert data_size({"binaryData": {"a": "eHl6", "b": "eA=="}}) == 4


def test_data_counts_utf8_bytes():
    assert data_size({"data": {"a": "é"}}) == 2


@pytest.mark.parametrize("key, error", [
    ("resnet18.py", None),
    ("_base___models__resnet18.py", None),
    ("a/b.py", "key 'a/b.py' may hold only letters, digits, '-', '_' and '.'"),
    ("..", "key '..' may hold only letters, digits, '-', '_' and '.'"),
    ("k" * 254, f"key '{'k' * 254}' is 254 characters; at most 253 are allowed"),
])
def test_config_map_keys(key, error):
    assert config_map_key_error(key) == error


@pytest.mark.parametrize("value, valid", [
    ("500m", True), ("2", True), ("8Gi", True), ("1.5", True), ("1e3", True),
    ("8GB", False), ("two", False), ("", False), ("-", False),
])
def test_quantity_pattern(value, valid):
    assert bool(re.match(QUANTITY_PATTERN, value)) is valid
