"""Names, namespaces, label values and keys, as the API server checks them."""

from __future__ import annotations

import pytest

from kctl.validate.names import (dns1035_error, dns1123_label_error, dns1123_subdomain_error, key_error,
                                 label_value_error)


@pytest.mark.parametrize("name, ok", [("digits", True), ("d-2x8", True), ("a" * 63, True),
                                      ("a" * 64, False), ("2x8", False), ("Digits", False),
                                      ("digits-", False), ("dig.its", False), ("dig_its", False)])
def test_job_names_are_dns1035_labels_of_at_most_63(name, ok):
    assert (dns1035_error(name) is None) is ok


@pytest.mark.parametrize("value, label_ok, subdomain_ok", [
    ("team-a", True, True), ("2team", True, True), ("a.b", False, True), ("A", False, False),
    ("-a", False, False), ("a" * 64, False, True), ("a..b", False, False)])
def test_dns1123_labels_and_subdomains(value, label_ok, subdomain_ok):
    assert (dns1123_label_error(value) is None) is label_ok
    assert (dns1123_subdomain_error(value) is None) is subdomain_ok


@pytest.mark.parametrize("value, ok", [("", True), ("resnet18_1xb64_digits", True),
                                       ("v1.2", True), ("_x", False), ("a b", False),
                                       ("x" * 64, False)])
def test_label_values(value, ok):
    assert (label_value_error(value) is None) is ok


@pytest.mark.parametrize("key, ok", [("app", True), ("app.kubernetes.io/name", True),
                                     ("kctl.dev/config", True), ("Bad_Prefix/x", False),
                                     ("a/", False), ("a/b/c", False), ("x" * 64, False)])
def test_label_keys(key, ok):
    assert (key_error(key) is None) is ok
