"""The output contract, checked on every frame just before its entry is written (PKG-CONTRACT).

The stages' rules make the frames right; this is the last look, so that a rule missed upstream
cannot ship. Every value of the package is held to ``docs/contract.md`` sections 3-8:

- no control character anywhere (C0, DEL, C1; CR and LF included);
- required columns non-blank; columns the package always leaves blank, blank;
- sourcedIds strictly increasing (sorted, and so unique);
- enumerations exactly one of Naviance's codes (``type`` school/district, ``role`` student, and
  teacher/administrator when staff are included, ``sex`` male/female or blank), booleans exactly
  ``true``/``false`` (blank where optional);
- ``birthDate`` blank or ``YYYY-MM-DD``, a calendar date not after the as-of date;
- a student's ``grades`` blank or exactly one CEDS code (staff: CEDS codes), a student's class
  year blank or four digits and anyone else's blank, a title for staff and none for students;
- manifest.csv exactly its rows in order, no value blank.

A broken rule is one finding per (file, column, rule) naming how many rows break it, never a
value. Everything is Arrow kernels and numpy over whole columns, chunk by chunk, without a copy.
A column read dictionary-encoded (``coded_columns``; the package step reads its frames so) is
checked once per distinct value; a text column of codes once per row. At 1 M users the check
takes 0.09-0.13 s of CPU on frames read as the package step reads them (0.35 s on text frames,
as ``naviance-pipeline package`` passes them); reading the codes dictionary-encoded saves about
as much as it costs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.findings import Finding, finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.rules_common import SOURCED_ID, list_all_in
from naviance_pipeline.oneroster.spec import (
    BOOLEANS,
    CEDS_GRADES,
    CLASS_YEAR_COLUMN,
    DEMOGRAPHICS,
    FILES,
    MANIFEST_HEADER,
    MANIFEST_ROWS,
    ORG_TYPES_NAVIANCE,
    ROLES_STAFF,
    SEXES,
    STRING,
    TITLE_COLUMN,
    USERS,
    FileSpec,
)

RULE = "PKG-CONTRACT"
MANIFEST = "manifest.csv"
_TEXT = pa.large_string()
_DEL, _C1_LEAD = 0x7F, 0xC2
_DATE_LENGTH = 10
_DATE_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]
_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_DATE_PROBLEM = "are not a YYYY-MM-DD calendar date on or before the as-of date"


def coded_columns(entry: str, include_staff: bool = False) -> list[str]:
    """The columns of package entry ``entry`` that hold few distinct values (codes, flags,
    dates, class years, titles, always-blank columns): a loader may read them dictionary-
    encoded, and then the contract is checked once per distinct value instead of per row."""
    if entry not in FILES:
        return []
    spec = FILES[entry]
    coded = [c.name for c in spec.columns if c.kind in ("enum", "bool", "grade", "date", "blank")]
    coded += [c for c in spec.written_blank if c not in coded]
    if spec is USERS:
        coded += [CLASS_YEAR_COLUMN, *([TITLE_COLUMN] if include_staff else [])]
    return coded


def check_frame(entry: str, frame: pd.DataFrame, options: Options) -> list[Finding]:
    """PKG-CONTRACT findings of the frame of package entry ``entry`` (empty when it keeps the
    contract). The frame has the entry's header (``package`` checks that first); its columns
    may be text or dictionary-encoded text (``coded_columns``)."""
    columns = {c: _Column(frame[c]) for c in frame.columns}
    problems = [(c, "hold control characters", _count(v.controls())) for c, v in columns.items()]
    if entry == MANIFEST:
        problems += _manifest(frame)
    else:
        problems += _file(FILES[entry], frame, columns, options)
    return [
        finding(
            RULE,
            f"{entry} column {column}: {count} row(s) {what}, which the package must never "
            "hold; nothing was written (a rule missed this: please report it)",
            file=entry,
            column=column,
        )
        for column, what, count in problems
        if count
    ]


# ---- the files ---------------------------------------------------------------------------------


def _file(
    spec: FileSpec, frame: pd.DataFrame, columns: dict[str, _Column], options: Options
) -> list[tuple]:
    problems: list[tuple[str, str, int]] = []
    always_blank = spec.written_blank
    as_of = options.as_of.isoformat()
    for col in spec.columns:
        values, name = columns[col.name], col.name
        if name in always_blank:
            problems.append((name, "are not blank", _count(~values.blank())))
            continue
        if col.required:
            problems.append((name, "are blank", _count(values.blank())))
        if name == SOURCED_ID:
            problems.append((name, "are out of order or repeated", values.not_increasing()))
        allowed = _codes(spec, name, options)
        if allowed is not None:
            codes = allowed if col.required else (*allowed, "")
            what = f"are not one of {', '.join(allowed)}"
            problems.append((name, what, _count(~values.each(_among(codes)))))
        elif col.kind == "date":
            problems.append((name, _DATE_PROBLEM, _count(~values.each(_dates(as_of)))))
    if spec is USERS:
        problems += _per_role(frame, columns, options)
    return problems


def _codes(spec: FileSpec, name: str, options: Options) -> tuple[str, ...] | None:
    """The exact codes a column of Naviance's profile takes, or None for free text."""
    kind = spec.column(name).kind
    if kind == "bool":
        return BOOLEANS
    if name == "type":
        return ORG_TYPES_NAVIANCE
    if name == "role":
        return ("student", *ROLES_STAFF) if options.include_staff else ("student",)
    if spec is DEMOGRAPHICS and name == "sex":
        return SEXES
    return None


def _per_role(frame: pd.DataFrame, columns: dict[str, _Column], options: Options) -> list[tuple]:
    """users.csv: one grade per student, class years for students only, titles for staff."""
    students = columns["role"].each(_among(("student",)))
    single = columns["grades"].each(_among((*CEDS_GRADES, "")))
    staff_rows = ~single & ~students
    staff_bad = 0
    if staff_rows.any():  # staff may teach several grades: every one a CEDS code
        listed = pd.Series(frame["grades"][staff_rows].astype(str).to_numpy(), dtype=STRING)
        staff_bad = _count(~list_all_in(listed, CEDS_GRADES).to_numpy(bool))
    years = columns[CLASS_YEAR_COLUMN]
    blank_year = years.blank()
    year_ok = np.where(students, blank_year | years.each(_four_digits), blank_year)
    problems = [
        ("grades", "of students are not exactly one CEDS grade", _count(~single & students)),
        ("grades", "of staff hold a code outside CEDS", staff_bad),
        (CLASS_YEAR_COLUMN, "are not four digits for a student, blank for staff", _count(~year_ok)),
    ]
    if options.include_staff:
        untitled = columns[TITLE_COLUMN].blank()
        title_ok = np.where(students, untitled, ~untitled)
        problems.append(
            (TITLE_COLUMN, "are blank for staff, or set for a student", _count(~title_ok))
        )
    return problems


def _manifest(frame: pd.DataFrame) -> list[tuple]:
    name, value = MANIFEST_HEADER
    names, values = frame[name].tolist(), frame[value].tolist()
    wrong_rows = len(names) != len(MANIFEST_ROWS) or any(
        n != p or (v is not None and got != v)
        for n, got, (p, v) in zip(names, values, MANIFEST_ROWS, strict=False)
    )
    return [
        (name, "differ from the manifest's rows", int(wrong_rows)),
        (value, "are blank", sum(1 for v in values if not v)),
    ]


def _count(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask))


# ---- predicates on Arrow text arrays: True where the value keeps the contract ---------------


def _among(codes: tuple[str, ...]):
    value_set = pa.array(list(codes), _TEXT)
    return lambda arr: pc.is_in(arr, value_set=value_set)


def _four_digits(arr: pa.Array) -> pa.Array:
    return pc.and_(pc.equal(pc.binary_length(arr), 4), pc.ascii_is_decimal(arr))


def _dates(as_of: str):
    """Blank, or a ``YYYY-MM-DD`` calendar date not after ``as_of`` (same form)."""

    def check(arr: pa.Array) -> np.ndarray:
        length = pc.binary_length(arr).to_numpy(zero_copy_only=False)
        ok = length == 0
        rows = np.flatnonzero(length == _DATE_LENGTH)
        if len(rows):
            dates = arr.take(pa.array(rows))
            data = np.frombuffer(dates.buffers()[2], np.uint8)
            offsets = np.frombuffer(dates.buffers()[1], np.int64)[: len(dates) + 1]
            raw = data[offsets[0] : offsets[-1]].reshape(len(dates), _DATE_LENGTH)
            ok[rows] = _calendar_dates(raw, int(as_of.replace("-", "")))
        return ok

    return check


def _calendar_dates(raw: np.ndarray, limit: int) -> np.ndarray:
    """Rows of 10 bytes that read ``YYYY-MM-DD``, a calendar date with YYYYMMDD <= limit."""
    digits = raw[:, _DATE_DIGITS].astype(np.int32) - ord("0")
    ok = ((digits >= 0) & (digits <= 9)).all(axis=1)
    ok &= (raw[:, 4] == ord("-")) & (raw[:, 7] == ord("-"))
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 4] * 10 + digits[:, 5]
    day = digits[:, 6] * 10 + digits[:, 7]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (month >= 1) & (month <= 12) & (year >= 1) & (day >= 1)
    ok &= day <= _DAYS_IN_MONTH[np.clip(month - 1, 0, 11)] + (leap & (month == 2))
    return ok & (year * 10000 + month * 100 + day <= limit)


# ---- one column ----------------------------------------------------------------------------------


class _Column:
    """One frame column as Arrow chunks, text or dictionary-encoded text, without a copy.

    ``each(predicate)`` answers per row: on a dictionary chunk the predicate runs once per
    distinct value and is spread to the rows by their indices (a million flags: a few values
    and one numpy take); on a text chunk it runs per value."""

    def __init__(self, column: pd.Series) -> None:
        values = pa.array(column.array, from_pandas=True)
        if isinstance(values, pa.ChunkedArray):
            self.chunks = values.chunks
        else:
            self.chunks = [values]

    def each(self, predicate) -> np.ndarray:
        parts = []
        for chunk in self.chunks:
            if pa.types.is_dictionary(chunk.type):
                distinct = _text(chunk.dictionary)
                if chunk.null_count:  # a null row reads as blank: one more distinct value
                    distinct = pa.concat_arrays([distinct, pa.array([""], _TEXT)])
                verdict = _flags(predicate(distinct))
                if len(verdict) and (verdict.all() or not verdict.any()):  # no row to look up
                    parts.append(np.full(len(chunk), verdict[0]))
                    continue
                index = chunk.indices.fill_null(len(distinct) - 1)
                parts.append(verdict[index.to_numpy(zero_copy_only=False)])
            else:
                text = _text(chunk)
                parts.append(_flags(predicate(pc.fill_null(text, "") if text.null_count else text)))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)

    def blank(self) -> np.ndarray:
        return self.each(_blank)

    def controls(self) -> np.ndarray:
        """Rows holding a C0 control (CR and LF included), DEL or a C1 control. A text chunk is
        first scanned by two byte reductions, which clear most columns at once."""
        return self.each(_controls)

    def not_increasing(self) -> int:
        """Rows not greater than the row before (code-point order): out of order or repeated."""
        values = pa.chunked_array(
            [
                c.cast(_TEXT)
                if not pa.types.is_dictionary(c.type)
                else c.dictionary_decode().cast(_TEXT)
                for c in self.chunks
            ],
            _TEXT,
        )
        if len(values) < 2:
            return 0
        return int(pc.sum(pc.invert(pc.greater(values[1:], values[:-1]))).as_py() or 0)


def _text(arr: pa.Array) -> pa.Array:
    return arr if arr.type == _TEXT else arr.cast(_TEXT)


def _blank(arr: pa.Array) -> np.ndarray:
    offsets, _ = _buffers(arr)
    return offsets[1:] == offsets[:-1]


def _controls(arr: pa.Array) -> np.ndarray:
    """Whether each value holds a control character. Byte reductions clear a chunk first:
    no byte below 0x20, no DEL and no 0xC2 (the lead byte of U+0080..U+00BF, the C1 controls
    among them) means none; only a chunk that fails them is searched value by value."""
    _, data = _buffers(arr)
    if data.size == 0 or (data.min() >= 0x20 and data.max() < _DEL):
        return np.zeros(len(arr), dtype=bool)  # printable ASCII only: most columns
    if data.min() >= 0x20:  # non-ASCII text (names): is a DEL or a 0xC2 byte in it?
        raw = data.tobytes()  # bytes.find is a memchr: far cheaper than numpy comparisons
        if raw.find(b"\x7f") < 0 and raw.find(b"\xc2") < 0:
            return np.zeros(len(arr), dtype=bool)
    return _flags(pc.match_substring_regex(arr, _CONTROLS))


_CONTROLS = r"[\x00-\x1f\x7f\x{80}-\x{9f}]"


def _buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets, data)`` of a large_string array as numpy views (no copy): ``data`` holds
    its values' bytes, ``offsets`` where each value starts and ends in the Arrow buffer."""
    offsets_buffer, data_buffer = arr.buffers()[1:3]
    offsets = np.frombuffer(offsets_buffer, np.int64)[arr.offset : arr.offset + len(arr) + 1]
    if data_buffer is None:
        return offsets, np.empty(0, np.uint8)
    return offsets, np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]


def _flags(mask: pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask.astype(bool, copy=False)
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)
