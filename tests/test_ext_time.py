"""-m time on the scenario's wall clock (`clock`), and the `clock` key itself.

Each expectation is either an example of iptables-extensions(8) 1.8.9 (libxt_time.man,
"EXAMPLES"), or follows from xt_time.c's time_mt (Linux 6.18), as each comment says.
Calendar facts used: 2026-12-07 and 2007-12-24 are Mondays, 2026-12-25 is the fourth
Friday of December 2026, 2024 is a leap year. The rules' outcome on a real kernel
(whatever today's date) is checked by tests/kernel/scenarios/ext-time.toml.
"""

from __future__ import annotations

import pytest

from kptui.engine.errors import ParseError
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.engine.wallclock import format_clock, parse_clock, resolved, with_clock

BOX = '[[interfaces]]\nname = "eth0"\naddresses = ["192.0.2.1/24"]\n'
PACKET = ('[[packets]]\niif = "eth0"\nproto = "udp"\nsrc = "192.0.2.10"\n'
          'dst = "192.0.2.1"\nsport = 1\ndport = 2\ntime = {t}\n')
HOUR, DAY = 3600, 86400


def scenario_text(rule: str, clock: str | None, times: list[float]) -> str:
    head = f'clock = "{clock}"\n' if clock is not None else ""
    rules = f"*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -m time {rule} -j DROP\nCOMMIT"
    return (head + f'iptables = """\n{rules}\n"""\n' + BOX
            + "".join(PACKET.format(t=t) for t in times))


def matches(rule: str, clock: str, times: list[float]) -> list[bool]:
    """Whether the rule matched each packet, sent ``times`` seconds after ``clock``."""
    sc = load_scenario(scenario_text(rule, clock, times), file="t.toml")
    fates = [r.to_json(with_events=False)["fate"] for r in run_scenario(sc)]
    assert all(f["action"] in ("drop", "deliver") for f in fates), fates
    return [f["action"] == "drop" for f in fates]


# -- the man page's examples ----------------------------------------------------------

def test_weekends():
    # man: "To match on weekends, use: -m time --weekdays Sa,Su" (Sat 5th, Sun 6th, Mon 7th)
    assert matches("--weekdays Sa,Su", "2026-12-05T12:00:00Z",
                   [0, DAY, 2 * DAY]) == [True, True, False]


def test_holiday_block_datestop_is_inclusive():
    # man: "--datestart 2007-12-24 --datestop 2007-12-27" is 12-24T00:00:00 to
    # 12-27T00:00:00, both ends included (time_mt: stamp < start || stamp > stop fails)
    assert matches("--datestart 2007-12-24 --datestop 2007-12-27", "2007-12-23T23:59:59Z",
                   [0, 1, 1 + 3 * DAY, 2 + 3 * DAY]) == [False, True, True, False]


def test_datestop_23_59_59_leaves_out_the_next_day():
    # man: "Since the stop time is actually inclusive, you would need the following stop
    # time to not match the first second of the new day"
    assert matches("--datestart 2007-01-01T17:00 --datestop 2007-01-01T23:59:59",
                   "2007-01-01T16:59:59Z", [0, 1, 7 * HOUR, 7 * HOUR + 1]) == \
        [False, True, True, False]


def test_lunch_hour():
    # man: "During lunch hour: -m time --timestart 12:30 --timestop 13:30" (both included)
    assert matches("--timestart 12:30 --timestop 13:30", "2026-12-07T12:29:59Z",
                   [0, 1, HOUR + 1, HOUR + 2]) == [False, True, True, False]


def test_the_fourth_friday_of_the_month():
    # man: "--weekdays Fr --monthdays 22,23,24,25,26,27,28": Fri 18th no, Thu 24th no,
    # Fri 25th yes, Sat 26th no
    assert matches("--weekdays Fr --monthdays 22,23,24,25,26,27,28", "2026-12-18T12:00:00Z",
                   [0, 6 * DAY, 7 * DAY, 8 * DAY]) == [False, False, True, False]


MONDAY = "2026-12-07T00:30:00Z"
# Mon 00:30, Mon 01:00:00, Mon 01:00:01, Mon 22:59:59, Mon 23:00, Tue 00:30, Tue 01:00:01
ACROSS = [0, 30 * 60, 30 * 60 + 1, 22 * HOUR + 29 * 60 + 59, 22 * HOUR + 30 * 60, DAY,
          DAY + 30 * 60 + 1]


def test_across_midnight_matches_two_pieces_of_the_same_day():
    # man: "--weekdays Mo --timestart 23:00 --timestop 01:00 Will match Monday, for one
    # hour from midnight to 1 a.m., and then again for another hour from 23:00 onwards"
    assert matches("--weekdays Mo --timestart 23:00 --timestop 01:00", MONDAY, ACROSS) == \
        [True, True, False, False, True, False, False]


def test_contiguous_counts_after_midnight_as_the_day_before():
    # man: --contiguous makes it "match for two hours from Monday 23:00 onwards"; time_mt:
    # packet_time <= daytime_stop takes a day off the stamp before the weekday
    assert matches("--weekdays Mo --timestart 23:00 --timestop 01:00 --contiguous", MONDAY,
                   ACROSS) == [False, False, False, False, True, True, False]


# -- xt_time.c's arithmetic -----------------------------------------------------------

def test_kerneltz_weekday_is_that_of_the_kernel_time_zone():
    # clock Mon 23:30 at -02:00 is Tue 01:30 UTC: without --kerneltz the weekday is UTC's
    # (Tue); with it, stamp -= 60 * tz_minuteswest (120) gives Monday
    clock = "2026-12-07T23:30:00-02:00"
    assert matches("--weekdays Mon", clock, [0]) == [False]
    assert matches("--weekdays Tue", clock, [0]) == [True]
    assert matches("--weekdays Mon --kerneltz", clock, [0]) == [True]
    # +01:00 (tz_minuteswest -60): Mon 00:30 there, Sun 23:30 UTC
    assert matches("--weekdays Sun", "2026-12-07T00:30:00+01:00", [0]) == [True]
    assert matches("--weekdays Mon --kerneltz", "2026-12-07T00:30:00+01:00", [0]) == [True]


def test_kerneltz_monthday_and_time_of_day():
    # Dec 31st 23:30 at -01:00 is Jan 1st 00:30 UTC
    clock = "2026-12-31T23:30:00-01:00"
    assert matches("--monthdays 1", clock, [0]) == [True]
    assert matches("--monthdays 31", clock, [0]) == [False]
    assert matches("--monthdays 31 --kerneltz", clock, [0]) == [True]
    assert matches("--timestart 23:00 --timestop 23:59:59 --kerneltz", clock, [0]) == [True]
    assert matches("--timestart 23:00 --timestop 23:59:59", clock, [0]) == [False]


def test_kerneltz_moves_the_datestart_boundary():
    # --datestart is compared with the stamp after the --kerneltz shift: 10:00 at +01:00
    # is 09:00 UTC, before 10:00 in UTC, at it in the kernel's zone
    rule = "--datestart 2026-12-07T10:00:00"
    assert matches(rule, "2026-12-07T10:00:00+01:00", [0]) == [False]
    assert matches(rule + " --kerneltz", "2026-12-07T10:00:00+01:00", [0]) == [True]
    assert matches(rule + " --kerneltz", "2026-12-07T09:59:59+01:00", [0]) == [False]


def test_contiguous_monthday_is_the_day_the_range_began():
    # 22:00-02:00 --contiguous --monthdays 31: Dec 31st 22:30 yes, Jan 1st 01:30 yes (a day
    # is taken off before localtime_3), Jan 1st 22:30 no (monthday 1)
    assert matches("--timestart 22:00 --timestop 02:00 --contiguous --monthdays 31",
                   "2026-12-31T22:30:00Z", [0, 3 * HOUR, DAY]) == [True, True, False]


def test_leap_year_monthdays():
    # localtime_3 uses days_since_leapyear[] in a leap year: Feb 29th, then March 1st
    assert matches("--monthdays 29", "2024-02-29T12:00:00Z", [0, DAY]) == [True, False]
    assert matches("--monthdays 1", "2024-02-29T12:00:00Z", [0, DAY]) == [False, True]
    assert matches("--monthdays 1", "2023-02-28T12:00:00Z", [DAY]) == [True]
    # xt_time.c's own comment: w=21612 is 2029-03-04
    assert matches("--monthdays 4", "2029-03-04T00:00:00Z", [0]) == [True]


def test_start_equal_to_stop_excludes_no_second():
    # time_mt: daytime_start < daytime_stop is false, and in the other branch
    # packet_time < start && packet_time > stop never holds: the whole day matches
    assert matches("--timestart 10:00 --timestop 10:00", "2026-12-07T03:00:00Z",
                   [0, 7 * HOUR, 7 * HOUR + 1]) == [True, True, True]


def test_monthday_zero_never_matches_and_its_inverse_always_does():
    # libxt_time accepts day 0 (bit 0); localtime_3's monthday is 1..31
    assert matches("--monthdays 0", "2026-12-07T12:00:00Z", [0]) == [False]
    assert matches("! --monthdays 0", "2026-12-07T12:00:00Z", [0]) == [True]


def test_the_kernel_clock_counts_whole_seconds():
    # ktime_get_real_seconds() rounds down: 12:29:59.5 is 12:29:59, half a second later
    # 12:30:00
    assert matches("--timestart 12:30 --timestop 13:00", "2026-12-07T12:29:59.5Z",
                   [0, 0.25, 0.5]) == [False, False, True]


def test_default_datestop_is_int_max():
    # libxt_time's default --datestop is INT_MAX: 2038-01-19T03:14:07, included
    assert matches("--weekdays Tue", "2038-01-19T03:14:07Z", [0, 1]) == [True, False]


# -- without a clock: named, never a guess ---------------------------------------------

def test_without_a_clock_the_walk_stops_naming_the_clock_key():
    sc = load_scenario(scenario_text("--weekdays Mon", None, [0]), file="t.toml")
    (r,) = [x.to_json(with_events=False) for x in run_scenario(sc)]
    assert r["fate"]["action"] == "error"
    assert "unsupported yet: -m time needs the box's wall clock" in r["fate"]["message"]
    assert "clock = " in r["fate"]["message"]


def test_an_unresolved_now_is_not_read_from_the_real_clock_by_the_engine():
    sc = load_scenario(scenario_text("--weekdays Mon", "now", [0]), file="t.toml")
    (r,) = [x.to_json(with_events=False) for x in run_scenario(sc)]
    assert r["fate"]["action"] == "error"
    assert 'unsupported yet: -m time with clock = "now" unresolved' in r["fate"]["message"]


# -- the `clock` key -------------------------------------------------------------------

@pytest.mark.parametrize("value,needle", [
    ('"2026-12-07T09:30Z"', "RFC 3339 date-time"),
    ('"2026-12-07"', "RFC 3339 date-time"),
    ('"2026-02-29T00:00:00Z"', "is not a date"),
    ('"2026-12-31T23:59:60Z"', "leap second"),
    ('"2026-12-07T24:00:00Z"', "is not a time of day"),
    ('"2026-12-07T09:30:00+15:01"', "settimeofday(2) takes -15:00..+15:00"),
    ('"2026-12-07T09:30:00+01:60"', "is not a time zone offset"),
    ('"yesterday"', "or \"now\""),
    ("2026-12-07T09:30:00Z", "clock must be a string"),  # TOML's own date-time
    ("0", "clock must be a string"),
])
def test_bad_clocks_name_the_file_line_and_token(value, needle):
    text = f'name = "x"\n\nclock = {value}\n' + BOX
    with pytest.raises(ParseError) as exc:
        load_scenario(text, file="s.toml")
    assert str(exc.value).startswith("s.toml:3: ")
    assert needle in str(exc.value)
    assert "(at " in str(exc.value)


def test_clock_text_round_trips_with_its_offset():
    for text in ("2026-12-07T10:30:00+01:00", "2026-12-07T09:30:00Z",
                 "1969-12-31T23:59:59.25-15:00", "2026-12-07T09:30:00.123456789Z"):
        assert parse_clock(text).text() == text  # type: ignore[union-attr]
    clock = parse_clock("2026-12-07T10:30:00+01:00")
    assert clock is not None and clock.minuteswest == -60
    assert clock.epoch_ns == parse_clock("2026-12-07T09:30:00Z").epoch_ns  # type: ignore
    assert parse_clock("2026-12-07 09:30:00z") == parse_clock("2026-12-07T09:30:00Z")
    assert parse_clock("now") is None
    assert format_clock(0, 0) == "1970-01-01T00:00:00Z"


def test_now_is_written_into_the_text_and_a_session_replays_it(tmp_path):
    from kptui.sessions.format import load, save
    from kptui.sessions.replay import record_run, replay

    text = scenario_text("--weekdays Mon", "now", [0, DAY])
    new = with_clock(text, "t.toml", "2026-12-07T12:00:00Z")
    assert new == text.replace('"now"', '"2026-12-07T12:00:00Z"')
    assert with_clock(new, "t.toml", "2030-01-01T00:00:00Z") == new  # resolved only once
    sc = resolved(load_scenario(text, file="t.toml"), "2026-12-07T12:00:00Z")
    assert sc.text == new
    save(record_run(sc, sc.text, sc.file), tmp_path / "run.kpt")
    session = load(tmp_path / "run.kpt")
    assert 'clock = "2026-12-07T12:00:00Z"' in session.scenario_text
    done = replay(session)
    assert done.divergence == ""
    fates = [r.to_json(with_events=False)["fate"]["action"] for r in run_scenario(done.scenario)]
    assert fates == ["drop", "deliver"]  # Monday, then Tuesday


def test_the_cli_resolves_now_when_it_reads_the_file(tmp_path):
    from kptui.cli import read_scenario_text

    path = tmp_path / "s.toml"
    path.write_text(scenario_text("--weekdays Mon", "now", [0]), "utf-8")
    text, _ = read_scenario_text(str(path))
    sc = load_scenario(text, file=str(path))
    assert sc.clock != "now" and sc.wall_clock is not None
    unresolved, _ = read_scenario_text(str(path), now=False)  # kptui verify's way
    assert load_scenario(unresolved, file="s.toml").clock == "now"


def test_a_now_that_cannot_be_rewritten_in_place_is_refused():
    from kptui.engine.wallclock import ClockError

    text = '"clock" = "now"\n' + BOX
    with pytest.raises(ClockError, match="on a line of its own"):
        with_clock(text, "t.toml", "2026-12-07T12:00:00Z")
