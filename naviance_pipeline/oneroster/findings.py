"""Findings: what validation reports, one record per problem, never a PII value.

Every rule code is declared once, with its severity, in the registry (``rules.py``): a
finding of any other code is a programming error. Severity ``R`` (repair) is reported as a
warning that says what was changed.

A finding shows the offending ``value`` of a non-PII column only when it has the shape of that
column's codes (``shown``): a PII value typed into the wrong column (an e-mail address in
``role``, a name in ``grades``, a birth date in ``sex``) must not be printed either. Other
values are described by their shape instead ("an e-mail address", "a date", "17 characters,
3 words"). The ``sourcedId`` of a finding passes the same test with the looser shape of an id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.rules import CAUSES, RULES
from naviance_pipeline.oneroster.spec import FILES, PII_COLUMNS

ERROR = "error"
WARNING = "warning"


def default_severity(rule: str) -> str:
    return ERROR if RULES[rule] == "E" else WARNING


# ---- which values a finding may show -----------------------------------------------------------

# A code (role, grade, sex, flag, class year, a short title) is at most this long; an id
# (sourcedId, GUIDs of 36 characters) at most ID_SHOWN_LENGTH.
SHOWN_LENGTH = 20
ID_SHOWN_LENGTH = 64
# Columns of ids (own, parent, org and agent sourcedIds): digits are their normal shape.
ID_COLUMNS = frozenset(c.name for s in FILES.values() for c in s.columns if c.kind in ("id", "ids"))
# A date in any common order (2009-04-17, 4/17/2009, 17.04.09), not inside a longer number.
DATE_LIKE = (
    r"(^|[^0-9])([0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{2,4})"
    r"([^0-9]|$)"
)
# Five digits or more, maybe split by phone-number punctuation: a phone, SSN, zip or student
# number. A code has at most four (class year 2030, grades 10,11).
NUMBER_LIKE = r"[0-9]([-/.() +]*[0-9]){4}"
_DATE_LIKE, _NUMBER_LIKE = re.compile(DATE_LIKE), re.compile(NUMBER_LIKE)


def shown(value: str | None, column: str | None) -> str | None:
    """What a finding about ``column`` shows of ``value``: the value itself when it is safe to
    show, else a description of its shape in brackets; None for PII columns. A value with no
    column (a count, a date the pipeline computed) is not a cell of the source: shown as is."""
    if value is None or column is None:
        return value
    if column in PII_COLUMNS:
        return None
    ids = column in ID_COLUMNS
    return value if _safe(value, ids) else f"[not shown: {_shape(value, ids)}]"


def shown_id(sourced_id: str | None) -> str | None:
    """A finding's sourcedId, or None when it does not look like an id (an e-mail address, a
    name or a date typed into the sourcedId column)."""
    return sourced_id if sourced_id and _safe(sourced_id, True) else None


def _safe(value: str, ids: bool) -> bool:
    return not (
        len(value) > (ID_SHOWN_LENGTH if ids else SHOWN_LENGTH)
        or "@" in value
        or any(ch.isspace() for ch in value)
        or _DATE_LIKE.search(value)
        or (not ids and _NUMBER_LIKE.search(value))
    )


def _shape(value: str, ids: bool) -> str:
    if "@" in value:
        return "an e-mail address"
    if _DATE_LIKE.search(value):
        return "a date"
    if not ids and _NUMBER_LIKE.search(value):
        return f"a number of {sum(ch.isdigit() for ch in value)} digits"
    words = len(value.split())
    return f"{len(value)} characters, {words} word{'' if words == 1 else 's'}"


def shown_values(values: Iterable[str | None] | pa.Array, column: str | None) -> list:
    """``shown`` of many values at once, vectorised (a failing file can have a million rows):
    each distinct value is judged, and described if need be, once, by Arrow kernels."""
    if column is None:
        return values.to_pylist() if isinstance(values, pa.Array) else list(values)
    arr = values if isinstance(values, pa.Array) else pa.array(list(values), pa.large_string())
    if column in PII_COLUMNS or arr.null_count == len(arr):
        return [None] * len(arr)
    ids = column in ID_COLUMNS
    encoded = pc.dictionary_encode(arr.cast(pa.large_string()))  # nulls stay null
    distinct = encoded.dictionary
    unsafe = _unsafe(distinct, ids)
    if not unsafe.any():
        return arr.to_pylist()
    rows = pa.array(np.flatnonzero(unsafe))
    positions = pc.index_in(pa.array(np.arange(len(distinct))), value_set=rows)
    described = pc.take(_shapes(distinct.take(rows), ids), positions)
    shown_distinct = pc.if_else(pa.array(unsafe), described, distinct)
    return shown_distinct.take(encoded.indices).to_pylist()


def shown_ids(sourced_ids: Iterable[str | None] | pa.Array) -> list:
    """``shown_id`` of many sourcedIds at once, vectorised."""
    arr = sourced_ids if isinstance(sourced_ids, pa.Array) else pa.array(list(sourced_ids))
    arr = arr.cast(pa.large_string())
    unsafe = _unsafe(arr, True) | ~pc.fill_null(pc.not_equal(arr, ""), False).to_numpy(
        zero_copy_only=False
    )
    return pc.if_else(pa.array(unsafe), pa.scalar(None, arr.type), arr).to_pylist()


def _unsafe(arr: pa.Array, ids: bool) -> np.ndarray:
    """Per value (null: safe): ``not _safe(value, ids)``, by Arrow kernels. Most ids are
    letters and digits only, which pass every test but the length: only the others are
    looked at closely."""
    arr = pc.fill_null(arr.cast(pa.large_string()), "")
    if not ids:
        return _unsafe_closely(arr, SHOWN_LENGTH, f"{DATE_LIKE}|{NUMBER_LIKE}")
    plain = pc.ascii_is_alnum(arr).to_numpy(zero_copy_only=False)
    unsafe = pc.greater(pc.utf8_length(arr), ID_SHOWN_LENGTH).to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~plain & ~unsafe)
    if len(rest):
        unsafe[rest] = _unsafe_closely(arr.take(pa.array(rest)), ID_SHOWN_LENGTH, DATE_LIKE)
    return unsafe


def _unsafe_closely(arr: pa.Array, limit: int, pattern: str) -> np.ndarray:
    unsafe = pc.or_(pc.greater(pc.utf8_length(arr), limit), pc.match_substring(arr, "@"))
    unsafe = pc.or_(unsafe, pc.greater(pc.list_value_length(pc.utf8_split_whitespace(arr)), 1))
    unsafe = pc.or_(unsafe, pc.match_substring_regex(arr, pattern))
    return unsafe.to_numpy(zero_copy_only=False)


def _shapes(arr: pa.Array, ids: bool) -> pa.Array:
    """``[not shown: <_shape>]`` of each value, by Arrow kernels."""
    text = pa.large_string()
    arr = pc.fill_null(arr.cast(text), "")
    tokens = pc.utf8_split_whitespace(arr)
    flat = pc.list_flatten(tokens)
    named = pc.not_equal(flat, "").to_numpy(zero_copy_only=False)
    parents = pc.list_parent_indices(tokens).to_numpy(zero_copy_only=False)
    words = np.bincount(parents[named], minlength=len(arr))
    length = pc.utf8_length(arr).cast(pa.int64())
    digits = pc.subtract(length, pc.utf8_length(pc.replace_substring_regex(arr, "[0-9]", "")))
    plural = pa.array(np.where(words == 1, "", "s"), text)

    def joined(*parts: pa.Array | str) -> pa.Array:
        pieces = [pa.scalar(p, text) if isinstance(p, str) else p.cast(text) for p in parts]
        return pc.binary_join_element_wise(*pieces, pa.scalar("", text))

    shape = joined(length, " characters, ", pa.array(words), " word", plural)
    if not ids:
        number = joined("a number of ", digits, " digits")
        shape = pc.if_else(pc.match_substring_regex(arr, NUMBER_LIKE), number, shape)
    for pattern, what in ((DATE_LIKE, "a date"), ("@", "an e-mail address")):
        hit = (
            pc.match_substring_regex(arr, pattern)
            if pattern != "@"
            else (pc.match_substring(arr, "@"))
        )
        shape = pc.if_else(hit, pa.scalar(what, text), shape)
    return joined("[not shown: ", shape, "]")


@dataclass(frozen=True)
class Finding:
    """One problem found in the source or the package. ``value`` is None for PII columns.
    ``consequences``: ``{rule: n}`` of the findings this one caused on the same row (the same
    user), counted here instead of reported (``with_consequences``); None when there are none."""

    rule: str
    severity: str
    file: str | None
    line: int | None
    column: str | None
    sourcedId: str | None  # the spec's spelling, as it appears in reports
    message: str
    value: str | None = None
    consequences: dict[str, int] | None = field(default=None, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("value", "consequences"):
            if d[key] is None:
                d.pop(key)
        return d


def finding(
    rule: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    column: str | None = None,
    sourced_id: str | None = None,
    value: str | None = None,
    severity: str | None = None,
) -> Finding:
    """Build a finding; ``value`` and ``sourced_id`` as ``shown`` and ``shown_id`` allow
    (never a value of a PII column)."""
    if rule not in RULES:
        raise KeyError(f"unknown rule code {rule}")
    return Finding(
        rule=rule,
        severity=severity or default_severity(rule),
        file=file,
        line=None if line is None else int(line),
        column=column,
        sourcedId=shown_id(sourced_id),
        message=message,
        value=shown(value, column),
    )


def as_warning(f: Finding) -> Finding:
    """The same finding at most a warning (rows the package leaves out anyway, section 10)."""
    if f.severity == WARNING:
        return f
    return Finding(**{**asdict(f), "severity": WARNING})


# ---- consequences: one cause, reported once -----------------------------------------------------


def consequence_note(counts: Mapping[str, int], file: str) -> str:
    """What a cause's message adds: ``(and 1 consequence: DEM-USER-REF in demographics.csv)``."""
    total = sum(counts.values())
    what = ", ".join(rule if n == 1 else f"{rule} × {n}" for rule, n in sorted(counts.items()))
    return f" (and {total} consequence{'' if total == 1 else 's'}: {what} in {file})"


def with_consequences(
    findings: Iterable[Finding],
    cause: str,
    consequence: str,
    counts: Mapping[int, int],
    *,
    cause_file: str,
    file: str,
) -> list[Finding]:
    """``findings`` with the ``cause`` finding on each line of ``cause_file`` in ``counts``
    carrying ``counts[line]`` findings of ``consequence`` (in ``file``) that are not reported.
    Only the causes are rebuilt (a failing file can have a million rows). Nothing is counted
    unless the registry declares ``consequence`` a consequence of ``cause`` (``CAUSES``)."""
    out = list(findings)
    if not counts or cause not in CAUSES.get(consequence, ()):
        return out
    notes: dict[int, str] = {}  # per count: a handful
    for i, f in enumerate(out):
        n = counts.get(f.line, 0) if f.rule == cause and (f.file or "") == cause_file else 0
        if n:
            if n not in notes:
                notes[n] = consequence_note({consequence: n}, file)
            had = f.consequences or {}
            out[i] = Finding(  # not dataclasses.replace: ten times slower, for 100,000 causes
                f.rule,
                f.severity,
                f.file,
                f.line,
                f.column,
                f.sourcedId,
                f.message + notes[n],
                f.value,
                {**had, consequence: had.get(consequence, 0) + n},
            )
    return out


def fold_same_row(findings: Iterable[Finding], consequence: str) -> list[Finding]:
    """``findings`` with each ``consequence`` finding whose cause (``rules.CAUSES``, the first
    declared) is found on the same row (file and line) at a severity at least as high counted
    under that cause instead of reported: it blocks nothing the cause does not block already."""
    findings = list(findings)
    order = CAUSES.get(consequence, ())
    causes: dict[tuple, Finding] = {}
    for f in findings:
        if f.rule in order and f.line:
            held = causes.get((f.file, f.line))
            if held is None or order.index(f.rule) < order.index(held.rule):
                causes[(f.file, f.line)] = f
    if not causes:
        return findings

    def cause_of(f: Finding) -> Finding | None:
        cause = causes.get((f.file, f.line)) if f.rule == consequence else None
        if cause is not None and (cause.severity == ERROR or f.severity == WARNING):
            return cause
        return None

    counts: dict[tuple[str, str], Counter] = {}
    kept = []
    for f in findings:
        cause = cause_of(f)
        if cause is None:
            kept.append(f)
        else:
            counts.setdefault((cause.rule, f.file or ""), Counter())[f.line] += 1
    for (rule, file), lines in counts.items():
        kept = with_consequences(kept, rule, consequence, lines, cause_file=file, file=file)
    return kept


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def summarize(findings: Iterable[Finding]) -> dict:
    """``{"errors": n, "warnings": n, "by_rule": {code: n}}`` with rules sorted by code, and
    when findings were counted under their cause, ``"consequences": {cause: {code: n}}``."""
    findings = list(findings)
    by_rule = Counter(f.rule for f in findings)
    summary = {
        "errors": sum(1 for f in findings if f.severity == ERROR),
        "warnings": sum(1 for f in findings if f.severity == WARNING),
        "by_rule": dict(sorted(by_rule.items())),
    }
    consequences = consequence_counts(findings)
    if consequences:
        summary["consequences"] = consequences
    return summary


def consequences_note(findings: Iterable[Finding]) -> str:
    """`` (and 3 consequences counted under them: DEM-USER-REF × 3)`` for a group of findings
    (one rule's, say); "" when none caused others."""
    counts: Counter = Counter()
    for f in findings:
        counts.update(f.consequences or {})
    if not counts:
        return ""
    total = sum(counts.values())
    listed = ", ".join(f"{rule} × {n}" for rule, n in sorted(counts.items()))
    return f" (and {total} consequence{'' if total == 1 else 's'} counted under them: {listed})"


def consequence_counts(findings: Iterable[Finding | Mapping]) -> dict[str, dict[str, int]]:
    """``{cause: {consequence: n}}``: the findings counted under causes instead of reported,
    from findings or their stored dicts (``to_dict``)."""
    counts: dict[str, Counter] = {}
    for f in findings:
        rule, caused = (
            (f["rule"], f.get("consequences"))
            if isinstance(f, Mapping)
            else (f.rule, f.consequences)
        )
        if caused:
            counts.setdefault(rule, Counter()).update({r: int(n) for r, n in caused.items()})
    return {cause: dict(sorted(c.items())) for cause, c in sorted(counts.items())}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Stable report order: file, line, rule."""
    return sorted(findings, key=lambda f: (f.file or "", f.line or 0, f.rule, f.column or ""))
