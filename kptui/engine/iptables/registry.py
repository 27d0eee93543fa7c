"""Every match and target kptui knows, by the name iptables loads it by.

The core modules (matches.py, targets.py) and the extension modules (ext/) in
one table each; an extension module may replace a core class of the same name.
"""

from __future__ import annotations

from kptui.engine.iptables import matches, targets
from kptui.engine.iptables.ext import extension_classes

_EXT_MATCHES, _EXT_TARGETS = extension_classes()

MATCHES: dict[str, type[matches.Match]] = {
    **matches.MATCHES, **{cls.name: cls for cls in _EXT_MATCHES}}
TARGETS: dict[str, type[targets.Target]] = {
    **targets.TARGETS, **{cls.name: cls for cls in _EXT_TARGETS}}
