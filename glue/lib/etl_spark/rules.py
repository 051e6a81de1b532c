"""The contract's rules (`pipeline.contract.Column.check`) as Spark SQL text.

Built as SQL strings and handed to `selectExpr`, not as pyspark Column objects: every `F.when`, `F.lit`
or `F.concat` is a round trip to the JVM, and the rules of a dozen columns took about 4,700 of them
(2 to 4 s of driver time per file, more than a small file's whole processing). One string per column
is one call. A test runs both engines on the same values and requires the same verdicts and reasons.

Each column's rules read two earlier projections (its trimmed text, then the number the text spells),
so that no expression is evaluated twice per row however many rules read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.contract import INTEGER_LIMIT, TABLE_TYPES, Column, Contract

NUMBER_CHARACTERS = r"^[0-9.eE+-]+\z"
"""The characters of `pipeline.contract.NUMBER_PATTERN`. A text made of these alone is a number to
Java's parser (which Spark's cast uses) exactly when it matches NUMBER_PATTERN: both read optional sign,
digits with at most one point and at least one digit, optional exponent with digits. What else Java
reads (NaN, Infinity, hex, a d/f suffix, tabs it trims) needs a character outside this class. The class
costs about half the full pattern per value. Java's regex, as `rlike` runs it: `\\z` is the end of the text
(`$` would also match before a final line break, which Java's parser then trims: "40\\n" would pass)."""
ROW_NUMBER_CHARACTERS = r"^[0-9.eE+,-]*\z"
"""NUMBER_CHARACTERS over a row's numeric texts joined by commas (`ContractRules.characters_fail`). A comma
inside a text (a decimal comma) passes this class, and Java's parser refuses it: such a text still fails."""
SPARK_TYPES = TABLE_TYPES
"""The Spark type each contract type is staged as (`ColumnRules.value`; a build reads staging with it)."""


def sql_string(text: str) -> str:
    """`text` as a Spark SQL string literal (the parser reads backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(name: str) -> str:
    """A column name as a quoted Spark SQL identifier, whatever it holds."""
    return "`" + name.replace("`", "``") + "`"


def _double(value: float) -> str:
    return f"CAST({sql_string(repr(float(value)))} AS DOUBLE)"


def _fmt(value: float) -> str:
    return f"{value:g}"


def _message(column: Column, rule: str) -> str:
    """`<name>: <rule>`, as Column.check words it: never the value."""
    return sql_string(f"{column.name}: {rule}")


@dataclass(frozen=True)
class ColumnRules:
    """SQL of one contract column, reading `text` (its trimmed text or null) and `number` (the double the
    text spells in the contract's syntax, or null)."""

    column: Column
    text: str
    number: str

    def _checks(self) -> list[tuple[str, str]]:
        """(fails, reason) in Column.check's order: the first that fails is the reason."""
        c, t, n = self.column, self.text, self.number
        checks: list[tuple[str, str]] = []
        if c.type == "integer":
            integral = f"({n} IS NOT NULL AND abs({n}) < {_double(INTEGER_LIMIT)} AND {n} = floor({n}))"
            checks.append((f"NOT {integral}", _message(c, "not an integer")))
        elif c.type == "double":
            checks.append((f"{n} IS NULL", _message(c, "not a number")))
            checks.append((f"abs({n}) = {_double(float('inf'))}", _message(c, "not a finite number")))
        if c.type != "string":
            if c.min is not None:
                checks.append((f"{n} < {_double(c.min)}", _message(c, f"below the minimum {_fmt(c.min)}")))
            if c.max is not None:
                checks.append((f"{n} > {_double(c.max)}", _message(c, f"above the maximum {_fmt(c.max)}")))
        if c.allowed is not None:
            compare, options = self._allowed()
            checks.append((f"NOT {compare} IN ({options})", _message(c, f"not one of {list(c.allowed)}")))
        if c.pattern is not None:
            checks.append((f"NOT {t} RLIKE {self._regex()}", _message(c, f"does not match {c.pattern}")))
        return checks

    def _allowed(self) -> tuple[str, str]:
        """(what is compared, the allowed values) of an `allowed` rule: the text of a string, else the number."""
        allowed = self.column.allowed or ()
        if self.column.type == "string":
            return self.text, ", ".join(sql_string(str(a)) for a in allowed)
        return self.number, ", ".join(_double(float(a)) for a in allowed)

    def _regex(self) -> str:
        """The contract's pattern over the whole text, as Python's `re.fullmatch` reads it (`\\z`, not `$`, which
        Java also matches before a final line break)."""
        return sql_string(f"^(?:{(self.column.pattern or '').strip('^$')})\\z")

    def value(self) -> str:
        """The typed value (null where the text is missing). Only rows that pass every check are staged, so
        a failing row's value is never read: the checks are not evaluated a second time for it."""
        if self.column.type == "integer":
            return f"CAST({self.number} AS {SPARK_TYPES['integer']})"
        return self.number

    def _passes(self) -> list[str]:
        """What a present value must satisfy, as conditions that are null where the number is (so that a
        missing number fails): `_checks` turned around, with the infinity check left out where both bounds
        already refuse an infinite number."""
        c, t, n = self.column, self.text, self.number
        passes: list[str] = []
        if c.type == "integer":
            passes.append(f"abs({n}) < {_double(INTEGER_LIMIT)} AND {n} = floor({n})")
        elif c.type == "double" and (c.min is None or c.max is None):
            passes.append(f"abs({n}) < {_double(float('inf'))}")
        if c.type != "string":
            if c.min is not None:
                passes.append(f"{n} >= {_double(c.min)}")
            if c.max is not None:
                passes.append(f"{n} <= {_double(c.max)}")
        if c.allowed is not None:
            compare, options = self._allowed()
            passes.append(f"{compare} IN ({options})")
        if c.pattern is not None:
            passes.append(f"{t} RLIKE {self._regex()}")
        return passes

    def failed(self) -> str:
        """Whether the value is rejected (never null). One conjunction of what a value must satisfy rather than a
        disjunction of `_checks`: the same verdict in about half the generated code, which keeps a contract's
        checks inside one whole-stage-codegen method (etl_spark.jobs.HUGE_METHOD_LIMIT: over it, Spark falls
        back to a projection per step, 2.3x the time on 1M rows)."""
        passes = self._passes()
        fails = f"NOT coalesce({' AND '.join(passes)}, false)" if passes else "false"
        return f"CASE WHEN {self.text} IS NULL THEN {str(not self.column.nullable).lower()} ELSE {fails} END"

    def reason(self) -> str:
        """Why the value is rejected (the first failing check), or null."""
        missing = sql_string(f"{self.column.name} is missing (required)") if not self.column.nullable else "NULL"
        branches = "".join(f" WHEN {fail} THEN {message}" for fail, message in self._checks())
        return f"CASE WHEN {self.text} IS NULL THEN {missing}{branches} ELSE NULL END"


@dataclass(frozen=True)
class ContractRules:
    """A contract's rules over a frame of positional raw fields: `texts`, then `numbers`, then `values`
    and `failed`, each a projection of the one before."""

    contract: Contract
    fields: Sequence[str]
    """The raw field holding each contract column, in the contract's order."""

    def _text_name(self, i: int) -> str:
        return f"_t{i}"

    def _number_name(self, i: int) -> str:
        return f"_n{i}"

    def texts(self) -> list[str]:
        """Each column's text trimmed of spaces, null where empty or a null spelling of the format."""
        nulls = ", ".join(sql_string(v) for v in ("", *self.contract.format.null_values))
        return [
            f"CASE WHEN trim({field}) IN ({nulls}) THEN NULL ELSE trim({field}) END AS {self._text_name(i)}"
            for i, field in enumerate(self.fields)
        ]

    def _numerics(self) -> list[tuple[str, str]]:
        """(text, number) of each numeric column: what `numbers` and `cast_numbers` read and name."""
        return [
            (self._text_name(i), self._number_name(i))
            for i, c in enumerate(self.contract.columns)
            if c.type != "string"
        ]

    def numbers(self) -> list[str]:
        """The double each numeric column's text spells in the contract's syntax (else null): what the
        reasons read, each column on its own."""
        return [
            f"CASE WHEN {text} RLIKE {sql_string(NUMBER_CHARACTERS)} THEN CAST({text} AS DOUBLE) END AS {number}"
            for text, number in self._numerics()
        ]

    def cast_numbers(self) -> list[str]:
        """The double Java's parser reads in each numeric column's text (else null): what the verdict reads,
        with `characters_fail` in `failed`. The same number as `numbers` wherever the row's texts pass
        `characters_fail`, without a regular expression per value (one per row instead: about 0.3 s less
        per 1M rows of 11 numeric columns, scripts/benchmark_raw_to_staging.py)."""
        return [f"CAST({text} AS DOUBLE) AS {number}" for text, number in self._numerics()]

    def characters_fail(self) -> str:
        """Whether a numeric text of the row holds a character no number of the contract's syntax has: what
        Java's parser reads beyond NUMBER_PATTERN (NaN, Infinity, hex, a d/f suffix, control characters it
        trims) always does, so that a row passing this reads the same numbers with `cast_numbers` as with
        `numbers`, and a row failing it fails a column's check too (its reasons say which)."""
        texts = [text for text, _ in self._numerics()]
        if not texts:
            return "false"
        return f"NOT concat_ws(',', {', '.join(texts)}) RLIKE {sql_string(ROW_NUMBER_CHARACTERS)}"

    def _columns(self) -> list[ColumnRules]:
        return [
            ColumnRules(c, self._text_name(i), self._number_name(i) if c.type != "string" else self._text_name(i))
            for i, c in enumerate(self.contract.columns)
        ]

    def values(self) -> list[str]:
        """Each column's typed value (null where missing or rejected), named as in the contract."""
        return [f"{rules.value()} AS {identifier(rules.column.name)}" for rules in self._columns()]

    def failed(self) -> str:
        """Whether any column of the row is rejected, over `texts` and either `numbers` or `cast_numbers`."""
        return " OR ".join([f"({self.characters_fail()})", *(f"({rules.failed()})" for rules in self._columns())])

    def reasons(self, first: str = "NULL") -> str:
        """`first` (a reason that is not a column's, or NULL) and every column's reason, joined by '; ';
        null when there is none."""
        joined = f"concat_ws('; ', {first}, {', '.join(rules.reason() for rules in self._columns())})"
        return f"nullif({joined}, '')"
