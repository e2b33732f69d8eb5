"""Metadata filters: equality, set membership and numeric range, combined with must / must_not.

A filter compiles to an SQL condition over the documents' metadata JSON, so the store returns the row
ids it admits (the `allowed` set every index search takes). Conditions follow Qdrant's semantics: a key
whose value is a list matches when any element matches; types must agree (the string "5" does not
equal the number 5, a range only matches numbers); a missing key never matches.

Spec form (what the gRPC layer translates to):
    {"must": [{"key": "year", "range": {"gte": 2020}}, {"key": "lang", "match": "en"}],
     "must_not": [{"key": "tag", "any": ["draft", "spam"]}]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ferret.errors import InvalidArgument

MAX_VALUES = 1024
Scalar = str | int | float | bool


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key or '"' in key or "\\" in key:
        raise InvalidArgument(
            f"filter key {key!r} is invalid: a non-empty metadata key without quotes or backslashes"
        )


def _check_scalar(key: str, value: Any) -> None:
    if isinstance(value, bool | str):
        return
    if isinstance(value, int | float) and math.isfinite(value):
        return
    raise InvalidArgument(f"filter on {key!r}: {value!r} is not a string, finite number or boolean")


@dataclass(frozen=True)
class Match:
    key: str
    value: Scalar

    def __post_init__(self) -> None:
        _check_key(self.key)
        _check_scalar(self.key, self.value)


@dataclass(frozen=True)
class MatchAny:
    key: str
    values: tuple[Scalar, ...]

    def __post_init__(self) -> None:
        _check_key(self.key)
        if not self.values or len(self.values) > MAX_VALUES:
            raise InvalidArgument(
                f"filter on {self.key!r}: 'any' needs 1..{MAX_VALUES} values, got {len(self.values)}"
            )
        for value in self.values:
            _check_scalar(self.key, value)


@dataclass(frozen=True)
class Range:
    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        bounds = {"gt": self.gt, "gte": self.gte, "lt": self.lt, "lte": self.lte}
        given = {k: v for k, v in bounds.items() if v is not None}
        if not given:
            raise InvalidArgument(f"range filter on {self.key!r} needs at least one of gt, gte, lt, lte")
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidArgument(
                    f"range filter on {self.key!r}: {name} must be a finite number, not {value!r}"
                )
        lows = [v for v in (self.gt, self.gte) if v is not None]
        highs = [v for v in (self.lt, self.lte) if v is not None]
        if lows and highs and max(lows) > min(highs):
            raise InvalidArgument(
                f"range filter on {self.key!r} is empty: lower bound {max(lows)} > upper {min(highs)}"
            )


Condition = Match | MatchAny | Range


@dataclass(frozen=True)
class Filter:
    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()

    def to_sql(self) -> tuple[str, list[Any]]:
        """An SQL condition over column `metadata` and its parameters."""
        clauses, params = ["1"], []
        for negate, conditions in ((False, self.must), (True, self.must_not)):
            for condition in conditions:
                sql, args = _condition_sql(condition)
                clauses.append(
                    f"{'NOT ' if negate else ''}EXISTS (SELECT 1 FROM json_each(metadata, ?) AS e "
                    f"WHERE {sql})"
                )
                params += [f'$."{condition.key}"', *args]
        return " AND ".join(clauses), params


def _value_sql(value: Scalar) -> tuple[str, list[Any]]:
    if isinstance(value, bool):
        return f"e.type = '{'true' if value else 'false'}'", []
    if isinstance(value, str):
        return "(e.type = 'text' AND e.value = ?)", [value]
    return "(e.type IN ('integer', 'real') AND e.value = ?)", [value]


def _condition_sql(condition: Condition) -> tuple[str, list[Any]]:
    if isinstance(condition, Match):
        return _value_sql(condition.value)
    if isinstance(condition, MatchAny):
        parts = [_value_sql(v) for v in condition.values]
        return "(" + " OR ".join(p[0] for p in parts) + ")", [a for p in parts for a in p[1]]
    sql, args = ["e.type IN ('integer', 'real')"], []
    for op, bound in ((">", condition.gt), (">=", condition.gte), ("<", condition.lt), ("<=", condition.lte)):
        if bound is not None:
            sql.append(f"e.value {op} ?")
            args.append(bound)
    return " AND ".join(sql), args


def parse_filter(spec: Mapping[str, Any] | None) -> Filter | None:
    """A Filter from its plain-data form (see the module docstring); None for no filter."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or set(spec) - {"must", "must_not"}:
        raise InvalidArgument("a filter is a map with 'must' and/or 'must_not' lists of conditions")
    return Filter(must=_conditions(spec.get("must", ())), must_not=_conditions(spec.get("must_not", ())))


def _conditions(items: Sequence[Any]) -> tuple[Condition, ...]:
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise InvalidArgument("'must' and 'must_not' take a list of conditions")
    out: list[Condition] = []
    for item in items:
        if not isinstance(item, Mapping) or "key" not in item or len(item) != 2:
            raise InvalidArgument(
                f"filter condition {item!r} must be {{'key': ..., and one of match/any/range}}"
            )
        kind = next(k for k in item if k != "key")
        if kind == "match":
            out.append(Match(item["key"], item["match"]))
        elif kind == "any":
            values = item["any"]
            if not isinstance(values, Sequence) or isinstance(values, str):
                raise InvalidArgument(f"filter on {item['key']!r}: 'any' takes a list of values")
            out.append(MatchAny(item["key"], tuple(values)))
        elif kind == "range":
            bounds = item["range"]
            if not isinstance(bounds, Mapping) or set(bounds) - {"gt", "gte", "lt", "lte"}:
                raise InvalidArgument(f"filter on {item['key']!r}: 'range' takes a map of gt/gte/lt/lte")
            out.append(Range(item["key"], **bounds))
        else:
            raise InvalidArgument(f"unknown filter condition {kind!r}; use match, any or range")
    return tuple(out)
