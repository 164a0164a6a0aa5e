"""The one TOML reader: typed getters that collect every problem with file, line and key."""

from __future__ import annotations

import pytest

from watershed.config_reader import ConfigError, of_mapping, parse_toml
from watershed.toml_lines import key_lines

MULTI_LINE = '''\
points = [
  [0.20, 0.05],
  [1.00, 6.0]
]
note = """
[not-a-table]
x = 1
"""
[[segments]]
offset = 1
'''


def test_values_over_several_lines_are_not_read_as_keys_or_headers() -> None:
    assert key_lines(MULTI_LINE) == {("points",): 1, ("note",): 5, ("segments", 0): 9,
                                     ("segments", 0, "offset"): 10}


def test_problems_are_placed_by_file_and_line_and_listed_in_file_order() -> None:
    root = parse_toml('[a]\nn = "x"\nflag = 2\n', "f.toml")
    a = root.table("a")
    a.boolean("flag", False)
    a.integer("n", 1)
    a.text("name")
    root.table("b", required=True)
    with pytest.raises(ConfigError) as e:
        root.check()
    assert e.value.problems == ["f.toml: b: required",
                                "f.toml:1: a.name: required",
                                "f.toml:2: a.n: expected an integer, got 'x'",
                                "f.toml:3: a.flag: expected true or false, got 2"]


def test_without_a_file_problems_name_only_the_key() -> None:
    root = of_mapping({"a": {"n": 0, "extra": 1}})
    a = root.table("a")
    a.integer("n", 1, low=1, high=9)
    a.reject_unknown()
    root.reject_unknown()
    with pytest.raises(ConfigError) as e:
        root.check()
    assert e.value.problems == ["a.n: expected an integer from 1 to 9, got 0",
                                "a.extra: unknown key (known here: n)"]


def test_defaults_are_not_checked_and_given_values_are() -> None:
    root = of_mapping({"given": ""})
    assert root.text("absent", "") == "" and root.number("n", 2, low=5) == 2.0
    assert root.text("given", "x") == ""
    with pytest.raises(ConfigError, match="^given: expected a non-empty string, got ''$"):
        root.check()


def test_a_secret_is_described_by_its_type_only() -> None:
    root = of_mapping({"token": 123456789, "password": ["hunter2"]})
    root.text("token", secret=True)
    root.text("password", secret=True)
    with pytest.raises(ConfigError) as e:
        root.check()
    assert e.value.problems == ["token: expected a non-empty string, got an integer",
                                "password: expected a non-empty string, got a list"]


def test_a_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ConfigError) as e:
        parse_toml("a = 1\nb = \n", "f.toml")
    [problem] = e.value.problems
    assert problem.startswith("f.toml:2: not valid TOML: ")
