"""The shortcuts of the restore path (issue 16) agree with the general code they skip.

- a `-A CHAIN spec` line goes straight to _append: it must be exactly what
  _split_command makes of the same tokens, whenever the shortcut is taken;
- its words are split without their columns (restore_words): the same words as
  split_restore's, or None where it leaves the line to split_restore;
- extension modules are imported on first use: the name tables must list every
  class of every module, in the module that defines it;
- the TOML nesting scan skips multi-line strings with str.find: the same brackets
  as the regular expression's own scan;
- restore hands the collector back as it found it.
"""

from __future__ import annotations

import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from kptui.engine import scenario
from kptui.engine.errors import ParseError
from kptui.engine.iptables import Ruleset, commands, lexer, registry, restore
from kptui.engine.iptables.ext import extension_classes

WORDS = ["-A", "-I", "-D", "-t", "nat", "-c", "1", "2", "--table", "--set-counters", "INPUT",
         "FOO", "-j", "ACCEPT", "!", "-s", "10.0.0.1", "-L", "-h", "-p", "tcp", "--dport",
         "80", "", "-", "[0:0]", "-N", "-X", "--append"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
def test_the_append_shortcut_is_what_split_command_makes(words: list[str]) -> None:
    toks = [(w, k + 1) for k, w in enumerate(words)]
    if commands.plain_append(words):  # what _restore then passes to _append
        ctx = commands._Ctx("f", 1)
        assert commands._split_command(toks, ctx, allow_table=False) == (
            None, toks[0], [toks[1]], toks[2:], None)


LINE_CHARS = st.sampled_from(list(' \t"\\ab-[]!'))


@settings(max_examples=1000, deadline=None)
@given(st.lists(LINE_CHARS, max_size=30))
def test_restore_words_are_split_restore_s_words(chars: list[str]) -> None:
    line = "".join(chars)
    words = lexer.restore_words(line)
    try:
        tokens = lexer.split_restore(line, file="f", lineno=1)
    except ParseError:  # an unclosed quote: left to split_restore, which refuses it
        assert words is None
        return
    assert words is None or words == [t[0] for t in tokens]
    if '"' not in line or "\\" not in line:  # only a backslash in quotes needs the regex
        assert words is not None or line.count('"') % 2


def test_the_extension_tables_name_every_module_class() -> None:
    matches, targets = extension_classes()
    assert registry.EXT_MATCHES == {c.name: c.__module__.rsplit(".", 1)[1] for c in matches}
    assert registry.EXT_TARGETS == {c.name: c.__module__.rsplit(".", 1)[1] for c in targets}
    for cls in matches:
        assert registry.match_class(cls.name) is cls
    for cls in targets:
        assert registry.target_class(cls.name) is cls
        assert registry.is_target(cls.name)
    assert registry.match_class("nosuch") is None and registry.target_class("NOSUCH") is None


TOML_CHARS = st.sampled_from(list("\"'#[]{}\n\\ a="))


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.one_of(TOML_CHARS, st.sampled_from(['"""', "'''"])), max_size=40))
def test_the_nesting_scan_finds_the_brackets_the_expression_finds(parts: list[str]) -> None:
    text = "".join(parts)

    def brackets(found: object) -> list[tuple[int, str]]:
        return [(m.start(), m.group()) for m in found if m.group() in "[]{}"]  # type: ignore[attr-defined]

    assert brackets(scenario._nesting_tokens(text)) == brackets(
        scenario._NESTING_TOKENS.finditer(text))


def test_restore_leaves_the_collector_as_it_was() -> None:
    text = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j ACCEPT\nCOMMIT\n"
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            restore(Ruleset(), text, file="f")
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
