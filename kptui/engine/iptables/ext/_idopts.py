"""Two mixins for XtMatch extensions (put them before XtMatch in the bases).

``SharedIds``: option tables where several names share one id (libxt_ttl's
--ttl-eq and --ttl, libxt_multiport's --sports and --source-ports). libxtables
keeps one flag per id, not per name, and looks an option's entry up by its id:
the second name is parsed as the first entry with that id (``! --ttl 5`` is
``! --ttl-eq 5``, checked), messages name that entry, and the final check
(xtables_options_fcheck) pairs entries with the other ids in id order. XtMatch's
own checks go by name; ``SharedIds`` puts the id back.

``Quick``: XtMatch's option and final checks, unchanged in effect, with less
work per rule (a 20,000-rule restore must not get slower than the hand-written
classes these replaced).
"""

from __future__ import annotations

from typing import Any, ClassVar

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, parse_entry_value


class SharedIds:
    """Mix in before XtMatch; ``ids`` gives each entry name its id. An option is parsed
    as the first entry with its id (libxtables looks the entry up by id): ``! --ttl 5``
    is ``! --ttl-eq 5``, and the messages name that entry."""

    ids: ClassVar[dict[str, int]] = {}
    _needs: ClassVar[bool] = True  # some entry is mandatory or needs another
    entries: ClassVar[tuple[Any, ...]]
    by_opt: ClassVar[dict[str, Any]]
    seen: frozenset[str]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "entries" in cls.__dict__:
            cls._needs = any(e.mand or e.also for e in cls.entries)

    @property
    def ext_name(self) -> str:
        return self.name  # type: ignore[attr-defined]

    def _given(self) -> set[int]:
        return {self.ids[opt[2:]] for opt in self.seen if opt[2:] in self.ids}

    @classmethod
    def _first(cls) -> dict[int, Any]:
        """id -> the first entry (in table order) with it, made once per class."""
        first = cls.__dict__.get("_first_entries")
        if first is None:
            first = {}
            for e in cls.entries:
                first.setdefault(cls.ids[e.name], e)
            cls._first_entries = first  # type: ignore[attr-defined]
        return first

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        e = self._first()[self.ids[opt[2:]]]
        if self.seen and self.ids[e.name] in self._given() and \
                (not e.multi or e.name in e.excl):
            raise BadValue(f'{self.ext_name}: option "--{e.name}" can only be used once.')
        if inv and not e.invert:
            raise BadValue(f'{self.ext_name}: option "--{e.name}" cannot be inverted.')
        if not args:
            value = None
        elif e.type is XT.STRING and not e.min and not e.max:
            value = args[0]
        else:
            value = parse_entry_value(self.ext_name, e, args[0])
        self.parsed(e.name, value, inv)  # type: ignore[attr-defined]

    def fcheck(self) -> None:
        if len(self.seen) == 1 and not self._needs:
            return  # one option, nothing it needs: the common case, nothing to check
        given = self._given()
        first = self._first()
        for e in self.entries:
            eid = self.ids[e.name]
            if e.mand and eid not in given:
                raise BadValue(f'{self.ext_name}: option "--{e.name}" must be specified')
            if eid not in given:
                continue
            excl = {self.ids[n] for n in e.excl}
            also = {self.ids[n] for n in e.also}
            for oid in sorted(first):
                if oid == eid:
                    continue
                other = first[oid]
                if oid in also and oid not in given:
                    raise BadValue(f'{self.ext_name}: option "--{e.name}" also requires '
                                   f'"--{other.name}".')
                if oid in excl and oid in given:
                    raise BadValue(f'{self.ext_name}: option "--{e.name}" cannot be used '
                                   f'together with "--{other.name}".')


class Quick:
    """XtMatch's option and final checks, the same but quicker for a restore's hot loop:
    a plain string is taken as it is, and only the entries that carry a constraint
    (mandatory, excl, also) are walked at the end (the others cannot fail)."""

    entries: ClassVar[tuple[Any, ...]]
    by_opt: ClassVar[dict[str, Any]]
    seen: frozenset[str]
    _checked: ClassVar[tuple[tuple[Any, str, tuple[tuple[str, str], ...]], ...]] = ()

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "entries" in cls.__dict__:
            cls._checked = tuple(
                (e, f"--{e.name}", tuple((o.name, f"--{o.name}") for o in cls.entries
                                         if o.name != e.name and
                                         (o.name in e.also or o.name in e.excl)))
                for e in cls.entries if e.mand or e.excl or e.also)

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        e = self.by_opt[opt]
        if opt in self.seen and (not e.multi or e.name in e.excl):
            raise BadValue(f'{self.name}: option "--{e.name}" can only be used once.')  # type: ignore[attr-defined]
        if inv and not e.invert:
            raise BadValue(f'{self.name}: option "--{e.name}" cannot be inverted.')  # type: ignore[attr-defined]
        if not args:
            value = None
        elif e.type is XT.STRING and not e.min and not e.max:
            value = args[0]
        else:
            value = parse_entry_value(self.name, e, args[0])  # type: ignore[attr-defined]
        self.parsed(e.name, value, inv)  # type: ignore[attr-defined]

    def fcheck(self) -> None:
        seen = self.seen
        for e, opt, others in self._checked:
            if opt not in seen:
                if e.mand:
                    raise BadValue(f'{self.name}: option "{opt}" must be specified')  # type: ignore[attr-defined]
                continue
            for name, other in others:
                if name in e.also and other not in seen:
                    raise BadValue(f'{self.name}: option "{opt}" also requires "{other}".')  # type: ignore[attr-defined]
                if name in e.excl and other in seen:
                    raise BadValue(f'{self.name}: option "{opt}" cannot be used together '  # type: ignore[attr-defined]
                                   f'with "{other}".')
