"""Names, namespaces, label values and keys as the API server checks them.

Each ``*_error`` helper returns ``None`` for a good value, else why it is bad. ``kctl train``
checks its flags with them before rendering (so this module stays light: it is imported by every
dry run), and :mod:`kctl.validate.metadata` checks any object's ``metadata`` with them.
"""

from __future__ import annotations

import re

from kctl.errors import UsageError
from kctl.job import check_dns1035

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def dns1123_label_error(value: str) -> str | None:
    """Namespaces: lowercase letters, digits and '-', at most 63 characters."""
    if len(value) > 63:
        return f"{value!r} is {len(value)} characters; at most 63 are allowed"
    if not _DNS1123_LABEL.match(value):
        return (f"{value!r} is not a DNS-1123 label: lowercase letters, digits and '-', "
                "starting and ending with a letter or digit")
    return None


def dns1123_subdomain_error(value: str) -> str | None:
    """Most object names (ConfigMaps, claims, priority classes): labels joined by '.', ≤ 253."""
    if len(value) > 253:
        return f"{value!r} is {len(value)} characters; at most 253 are allowed"
    if not value or not all(_DNS1123_LABEL.match(part) for part in value.split(".")):
        return (f"{value!r} is not a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit")
    return None


def dns1035_error(value: str) -> str | None:
    """PyTorchJob names (the operator's webhook): a DNS-1035 label of at most 63 characters."""
    try:
        check_dns1035(value, limit=63, what="job name")
    except UsageError as err:
        return str(err)
    return None


def label_value_error(value: str) -> str | None:
    """Empty, or at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric."""
    if len(value) > 63:
        return f"label value {value!r} is {len(value)} characters; at most 63 are allowed"
    if value and not _NAME_PART.match(value):
        return (f"label value {value!r} may hold only letters, digits, '-', '_' and '.', "
                "and must start and end with a letter or digit")
    return None


def key_error(key: str) -> str | None:
    """Label and annotation keys: an optional DNS-1123 subdomain prefix and '/', then a name."""
    prefix, _, name = key.rpartition("/")
    if prefix and dns1123_subdomain_error(prefix):
        return f"key prefix {prefix!r} is not a DNS-1123 subdomain"
    if len(name) > 63 or not _NAME_PART.match(name):
        return (f"key {key!r}: the name after the prefix must be 1-63 letters, digits, '-', '_' "
                "or '.', starting and ending with a letter or digit")
    return None


#: How each kind's ``metadata.name`` is checked.
NAME_RULES = {"dns1035": dns1035_error, "dns1123-subdomain": dns1123_subdomain_error}
