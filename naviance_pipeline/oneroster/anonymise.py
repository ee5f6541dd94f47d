"""An anonymised copy of a OneRoster export that a district can send to support (issue 19).

Every PII value is replaced by a keyed fake of the same shape, and nothing else changes:

- which values: every value of a PII column (``spec.py``); every sourcedId (own, parent, org
  and agent; unless ``keep_sourced_ids``); every value of a non-PII column that a finding would
  not show (``findings.shown``, the one rule of what looks like a code: an e-mail address typed
  into ``grades`` is replaced, ``09`` is kept); every value of a column the validator does not
  read (unknown, duplicate, case-mismatched) and every field of a ragged record; in other CSV
  files, sourcedIds and what is not code-shaped. Headers and the manifest's property names
  are kept; files that are not CSV are written empty.
- the fake: only letters and digits change. A letter stays a letter of the same case, a digit
  a digit; punctuation, spaces, quotes, control characters, line breaks, BOMs and undecodable
  bytes are kept where they are, so the CSV structure and its damage (ragged rows, broken
  quoting, spreadsheet dates, scientific-notation ids) stay byte for byte. The letters and
  digits of a value are enciphered together by a keyed permutation (format-preserving: a
  Feistel network with modular addition over the number its letters and digits spell, in base
  26 and base 10), so the same value (letter case set aside, then put back) gives the same
  fake everywhere, two values never give one fake (references, duplicates and case collisions
  survive exactly), and leading zeros of a number are kept (XLS-LEADING-ZERO). A
  ``YYYY-MM-DD`` date is shifted by the same number of days (30 to 365, from the key)
  everywhere; an impossible one keeps its month and day and moves by whole leap cycles, so it
  stays impossible.
- the key: a secret the district keeps (``NAVIANCE_ANONYMISE_KEY`` or a key file): the same
  export gives the same copy only with the same key. It is never printed.

It reads and writes one record at a time (memory bounded by the longest record, and by the
caches of recent values), then ``prove`` validates the original and the copy and compares the
rule codes found on each file, line and column.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import string
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from naviance_pipeline.oneroster.csvread import CONTROL_CHARS, METADATA_PREFIX
from naviance_pipeline.oneroster.findings import Finding, shown, shown_id
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import FILES

KEY_ENV = "NAVIANCE_ANONYMISE_KEY"
MIN_KEY_BYTES = 16
ROUNDS = 8
# A record whose quotes do not balance within this many bytes is cut at its line break (the
# validator reports the broken quoting; every value of such a record is replaced).
MAX_RECORD_BYTES = 1 << 20
CHUNK = 1 << 20
CACHE = 1 << 16

# What a column's values are: always replaced (PII, or a column the validator does not read),
# sourcedIds (one or a list), or anything else (replaced when a finding would not show it).
PII, ID, IDS, OTHER, KEEP = "pii", "id", "ids", "other", "keep"

_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_SCIENTIFIC = re.compile(r"-?[0-9]+(\.[0-9]+)?[Ee][+-]?[0-9]+")
_CONTROL = re.compile(CONTROL_CHARS.replace(r"\x{80}", "\x80").replace(r"\x{9f}", "\x9f"))
_BREAK = re.compile(rb"\r\n|\n|\r")
_LETTERS = frozenset(string.ascii_letters)
_DIGITS = frozenset(string.digits)
_LOWER = string.ascii_lowercase
_NOT_LETTER, _NOT_DIGIT = re.compile("[^A-Za-z]+"), re.compile("[^0-9]+")
_BASE26 = str.maketrans(_LOWER, string.digits + _LOWER[:16])  # a-z as the numerals of base 26
_SHAPE = str.maketrans(
    {**dict.fromkeys(string.ascii_letters, "a"), **dict.fromkeys(string.digits, "0")}
)
_QUOTED = re.compile(r'"(?:[^"]|"")*"[^,]*')
_PLAIN = re.compile(r"[^,]*")
# Letters a non-ASCII letter is replaced by (a non-ASCII letter, as the ID-CHARSET rule sees it).
_ACCENTED = "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþ"


class AnonymiseError(Exception):
    """The copy cannot be made: a one-line reason (no key, a source that is not a local
    OneRoster ZIP or folder, an output that exists); never a value of the source."""


def load_key(key_file: str | None, environ: dict[str, str] | None = None) -> bytes:
    """The secret: the contents of ``key_file`` (trailing line break dropped) or else the
    environment variable ``KEY_ENV``; at least ``MIN_KEY_BYTES`` bytes."""
    environ = os.environ if environ is None else environ
    if key_file:
        try:
            key = Path(key_file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise AnonymiseError(f"cannot read the key file {key_file}: {exc.strerror}") from None
        where = f"the key file {key_file}"
    else:
        key = environ.get(KEY_ENV, "").encode()
        where = KEY_ENV
        if not key:
            raise AnonymiseError(
                f"no key: set {KEY_ENV} or give --key-file (a secret the district keeps; "
                "the same key gives the same copy)"
            )
    if len(key) < MIN_KEY_BYTES:
        raise AnonymiseError(f"the key in {where} is shorter than {MIN_KEY_BYTES} bytes")
    return key


# ---- the fakes ---------------------------------------------------------------------------------


class Faker:
    """Keyed, consistent, same-shape fakes of values (see the module's docstring)."""

    def __init__(self, key: bytes, *, keep_sourced_ids: bool = False) -> None:
        self.keep_sourced_ids = keep_sourced_ids
        self._prf = hashlib.shake_256(_derive(key, b"feistel"))
        self.days = 30 + int.from_bytes(_derive(key, b"date-shift")[:8], "big") % 336
        self.leap_years = 4 * (1 + int.from_bytes(_derive(key, b"bad-date")[:8], "big") % 25)
        self.replaced = 0
        self._fake = lru_cache(maxsize=CACHE)(self._fake_uncached)
        self._hidden = lru_cache(maxsize=CACHE)(_hidden)
        self._other = lru_cache(maxsize=CACHE)(self._other_uncached)

    # -- cells --

    def cell(self, value: str, kind: str, column: str | None) -> str:
        """The copy of one cell's value (unquoted) of a column of ``kind``."""
        if not value or kind == KEEP:
            return value
        # A value of a non-PII column is a code, mostly: the same few values again and again.
        out = self._other(value, column) if kind == OTHER else self._cell(value, kind, column)
        if out != value:
            self.replaced += 1
        return out

    def _other_uncached(self, value: str, column: str | None) -> str:
        return self._cell(value, OTHER, column)

    def _cell(self, value: str, kind: str, column: str | None) -> str:
        if not value or value.isspace():
            return value
        if kind == IDS:
            return ",".join(self._cell(token, ID, column) for token in value.split(","))
        cleaned, positions = _cleaned(value)
        if not cleaned:
            return value
        if kind == ID and self.keep_sourced_ids and shown_id(cleaned) is not None:
            return value
        if kind == OTHER and not self._hidden(cleaned, column):
            return value
        fake = self._fake(cleaned)
        if positions is None:
            return fake
        out = list(value)
        for at, ch in zip(positions, fake, strict=True):
            out[at] = ch
        return "".join(out)

    # -- values --

    def _fake_uncached(self, value: str) -> str:
        iso = _ISO_DATE.fullmatch(value)
        if iso:
            year, month, day = (int(g) for g in iso.groups())
            try:
                return (date(year, month, day) + timedelta(days=self.days)).isoformat()
            except (ValueError, OverflowError):  # impossible, or shifted past year 9999
                moved = year + self.leap_years if year + self.leap_years <= 9999 else year - 400
                if moved != year and moved > 0:
                    return f"{moved:04d}{value[4:]}"
        return self._encipher(value)

    def _encipher(self, value: str) -> str:
        zeros = len(value) - len(value.lstrip("0"))  # leading zeros: kept (XLS-LEADING-ZERO)
        head, body = value[:zeros], value[zeros:]
        exponent = _SCIENTIFIC.fullmatch(body) and re.search("[Ee]", body)
        if exponent:  # 1.23457E+11: the E stays (XLS-SCIENTIFIC-ID)
            body = body[: exponent.start()] + "\0" + body[exponent.end() :]
        letters = _NOT_LETTER.sub("", body).lower()
        digits = _NOT_DIGIT.sub("", body)
        nl, nd = len(letters), len(digits)
        tweak = (head + body.translate(_SHAPE)).encode("utf-8", "surrogatepass")
        if nl + nd:
            size_d = 10**nd
            number = (int(letters.translate(_BASE26), 26) if nl else 0) * size_d + (
                int(digits) if nd else 0
            )
            lead_digit = nd and "0" <= body[0] <= "9"  # and not a zero: the fake neither
            while True:  # cycle-walking, when the first digit must not become a zero
                number = self._permute(number, nl, nd, tweak)
                if not lead_digit or number % size_d >= size_d // 10:
                    break
            number, fake_digits = divmod(number, size_d)
            fake_letters = []
            for _ in range(nl):
                number, d = divmod(number, 26)
                fake_letters.append(_LOWER[d])
            li, di = reversed(fake_letters), iter(f"{fake_digits:0{nd}d}" if nd else "")
            body = "".join(
                (next(li).upper() if c.isupper() else next(li))
                if c in _LETTERS
                else next(di)
                if c in _DIGITS
                else c
                for c in body
            )
        if not body.isascii():
            body = "".join(
                self._accented(c, i, tweak) if c.isalpha() and not c.isascii() else c
                for i, c in enumerate(body)
            )
        if exponent:
            body = body.replace("\0", exponent.group())
        return head + body

    def _accented(self, ch: str, at: int, tweak: bytes) -> str:
        pick = _ACCENTED[self._round(255, at, tweak, 1)[0] % len(_ACCENTED)]
        return pick.upper() if ch.isupper() else pick

    def _permute(self, number: int, nl: int, nd: int, tweak: bytes) -> int:
        """A keyed permutation of [0, 26**nl * 10**nd): a Feistel network over the two factors
        of a balanced split of that size (modular addition: no cycle-walking needed)."""
        al, ad = nl // 2, nd // 2
        if nl % 2 and nd % 2:
            al += 1
        size_a, size_b = 26**al * 10**ad, 26 ** (nl - al) * 10 ** (nd - ad)
        wa, wb = size_a.bit_length() // 8 + 9, size_b.bit_length() // 8 + 9
        x, y = divmod(number, size_b)
        for r in range(0, ROUNDS, 2):
            x = (x + int.from_bytes(self._round(r, y, tweak, wa), "big")) % size_a
            y = (y + int.from_bytes(self._round(r + 1, x, tweak, wb), "big")) % size_b
        return x * size_b + y

    def _round(self, r: int, value: int, tweak: bytes, width: int) -> bytes:
        h = self._prf.copy()
        h.update(b"%d|%d|%s|%d" % (r, len(tweak), tweak, value))
        return h.digest(width)


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.digest(key, b"naviance-anonymise-v1:" + purpose, "sha256")


def _hidden(value: str, column: str | None) -> bool:
    """Whether a finding would not show this value of this column (so the copy must not)."""
    return shown(value, column) != value


def _cleaned(value: str) -> tuple[str, list[int] | None]:
    """The value as the validator reads it (control characters removed, surrounding
    whitespace trimmed), and where its characters stand in ``value`` (None: everywhere)."""
    if not _CONTROL.search(value) and value == value.strip():
        return value, None
    kept = [i for i, ch in enumerate(value) if not _CONTROL.fullmatch(ch)]
    text = "".join(value[i] for i in kept)
    start = len(text) - len(text.lstrip())
    end = len(text.rstrip())
    return text[start:end], kept[start:end]


# ---- CSV files: records and fields, byte for byte ----------------------------------------------


def _records(stream: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """The records of a CSV file with their line breaks, as bytes, and whether the record is
    whole (its quotes balance; False: cut at a line break after ``MAX_RECORD_BYTES``)."""
    pending, quotes, rest = b"", 0, b""
    while True:
        chunk = stream.read(CHUNK)
        data = rest + chunk
        start = 0
        for brk in _BREAK.finditer(data):
            if brk.end() == len(data) and data.endswith(b"\r") and chunk:
                break  # a \r at the end of a chunk may be the start of \r\n
            line = data[start : brk.end()]
            start = brk.end()
            pending += line
            quotes += line.count(b'"')
            if quotes % 2 == 0:
                yield pending, True
                pending, quotes = b"", 0
            elif len(pending) > MAX_RECORD_BYTES:
                yield pending, False
                pending, quotes = b"", 0
        rest = data[start:]
        if not chunk:
            break
    if pending or rest:
        yield pending + rest, quotes % 2 == 0


def _fields(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, quoted) of each field of one record (its line break removed)."""
    out, pos = [], 0
    while True:
        quoted = text.startswith('"', pos)
        match = (_QUOTED if quoted else _PLAIN).match(text, pos)
        end = match.end() if match and (match.end() > pos or not quoted) else len(text)
        out.append((pos, end, quoted))
        if end >= len(text) or text[end] != ",":
            return out
        pos = end + 1


def _header_kinds(names: list[str], file_name: str) -> list[tuple[str, str | None]]:
    """(kind, column) of each header field, as the validator maps the header (``csvread``):
    a column it does not read (unknown, case-mismatched, duplicate) is PII."""
    spec = FILES.get(file_name)
    out: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.lstrip("\ufeff").strip().strip('"').strip()
        if file_name == "manifest.csv" and name == "propertyName":  # the spec's names
            out.append((KEEP, name))
            continue
        if spec is None:  # another CSV file: its ids are sourcedIds, the rest is told by shape
            sourced = name.lower().endswith(("sourcedid", "sourcedids"))
            out.append(((IDS if sourced else OTHER), name))
            continue
        target = spec.aliases.get(name, name)
        if target in seen or not (target in spec.header or target.startswith(METADATA_PREFIX)):
            out.append((PII, None))
            continue
        seen.add(target)
        column = spec.column(target) if target in spec.header else None
        if column is None or not (column.pii or column.kind in ("id", "ids")):
            out.append((OTHER, target))
        else:
            out.append((PII if column.pii else IDS if column.kind == "ids" else ID, target))
    return out


def anonymise_csv(stream: BinaryIO, file_name: str, faker: Faker) -> Iterator[bytes]:
    """The records of one CSV file, anonymised (the header is kept)."""
    kinds: list[tuple[str, str | None]] | None = None
    for record, whole in _records(stream):
        text = record.decode("utf-8", "surrogateescape")
        body = text.rstrip("\r\n")
        ending = text[len(body) :]
        if kinds is None:
            kinds = _header_kinds([body[a:b] for a, b, _ in _fields(body)], file_name)
            yield record
            continue
        if '"' not in body:  # most records: no quoting, so the fields are the split
            values = body.split(",")
            if len(values) == len(kinds) and whole:
                cell = faker.cell
                copied = ",".join([cell(v, k, c) for v, (k, c) in zip(values, kinds, strict=True)])
                yield (copied + ending).encode("utf-8", "surrogateescape")
                continue
        spans = _fields(body)
        ragged = not whole or len(spans) != len(kinds)
        pieces, pos = [], 0
        for i, (start, end, quoted) in enumerate(spans):
            kind, column = (PII, None) if ragged or i >= len(kinds) else kinds[i]
            raw = body[start:end]
            pieces.append(body[pos:start])
            pieces.append(_copy_field(raw, quoted, kind, column, faker))
            pos = end
        pieces.append(body[pos:])
        yield ("".join(pieces) + ending).encode("utf-8", "surrogateescape")


def _copy_field(raw: str, quoted: bool, kind: str, column: str | None, faker: Faker) -> str:
    if not quoted:
        return faker.cell(raw, kind, column)
    close = raw.rfind('"') if len(raw) > 1 else -1
    inner, tail = (raw[1:close], raw[close:]) if close > 0 else (raw[1:], "")
    value = inner.replace('""', '"')
    fake = faker.cell(value, kind, column)
    if fake == value:
        return raw
    return '"' + fake.replace('"', '""') + tail[:1] + faker.cell(tail[1:], PII, None)


# ---- sources and copies ------------------------------------------------------------------------


@dataclass
class Copy:
    path: Path
    files: int
    replaced: int


def copy_target(source: str, out: str) -> Path:
    """Where the copy of ``source`` goes in ``out``: ``out/<the source's name>``. Refused: a
    source that is not a local ZIP file or folder, an output inside the source, a copy that
    exists already."""
    if "://" in source:
        raise AnonymiseError("anonymise reads a local OneRoster ZIP file or folder, not a URL")
    src = Path(source)
    if not (src.is_dir() or src.is_file()):
        raise AnonymiseError(f"{source} does not exist or is not a ZIP file or folder")
    target = Path(out) / src.resolve().name
    resolved_out = Path(out).resolve()
    if src.is_dir() and (resolved_out == src.resolve() or src.resolve() in resolved_out.parents):
        raise AnonymiseError("--out must not be the source folder or inside it")
    if target.exists() or target.is_symlink():
        raise AnonymiseError(f"{target} exists: remove it or choose another --out")
    return target


def anonymise(source: str, out: str, key: bytes, *, keep_sourced_ids: bool = False) -> Copy:
    """Write the anonymised copy of a local OneRoster ZIP or folder into the folder ``out``
    (owner-only); return where it is."""
    target = copy_target(source, out)
    Path(out).mkdir(parents=True, exist_ok=True, mode=0o700)
    faker = Faker(key, keep_sourced_ids=keep_sourced_ids)
    src = Path(source)
    partial = target.with_name(f".{target.name}.partial")
    try:
        files = (
            _copy_folder(src, partial, faker) if src.is_dir() else _copy_zip(src, partial, faker)
        )
        os.replace(partial, target)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        _remove(partial)
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise AnonymiseError(f"{source} could not be read to the end ({what})") from None
    except BaseException:
        _remove(partial)
        raise
    return Copy(target, files, faker.replaced)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()


def _is_csv(name: str) -> bool:
    return name.lower().endswith(".csv")


def _copy_zip(src: Path, dest: Path, faker: Faker) -> int:
    try:
        zin = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as exc:
        raise AnonymiseError(f"{src} is not a ZIP file that can be read ({exc})") from None
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with zin, os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as zout:
        zout.comment = zin.comment
        for info in zin.infolist():
            copy = zipfile.ZipInfo(info.filename, info.date_time)
            copy.compress_type, copy.external_attr = info.compress_type, info.external_attr
            copy.create_system, copy.comment = info.create_system, info.comment
            link = stat.S_ISLNK(info.external_attr >> 16)
            with warnings.catch_warnings():  # a name twice is the source's damage: kept
                warnings.simplefilter("ignore", UserWarning)
                with zout.open(copy, "w", force_zip64=True) as w:
                    if info.is_dir():
                        continue
                    with zin.open(info) as r:
                        if link:
                            w.write(r.read(4096))
                        elif _is_csv(info.filename):
                            name = info.filename.rsplit("/", 1)[-1]
                            for piece in anonymise_csv(r, name, faker):
                                w.write(piece)
        return len(zin.infolist())


def _copy_folder(src: Path, dest: Path, faker: Faker) -> int:
    dest.mkdir(mode=0o700)
    count = 0
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        target = dest / entry.name
        count += 1
        if entry.is_symlink():  # kept as a link (the validator refuses one that leaves)
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir(follow_symlinks=False):
            count += _copy_folder(Path(entry.path), target, faker) - 1
        elif stat.S_ISFIFO(entry.stat(follow_symlinks=False).st_mode):
            os.mkfifo(target, 0o600)
        elif entry.is_file(follow_symlinks=False):
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(entry.path, "rb") as r, os.fdopen(fd, "wb") as w:
                if _is_csv(entry.name):
                    for piece in anonymise_csv(r, entry.name, faker):
                        w.write(piece)
        else:
            count -= 1  # a device or socket: not copied
    return count


# ---- the proof ---------------------------------------------------------------------------------

Place = tuple[str, str, int, str]  # rule, file, line, column ("" where there is none)


@dataclass
class Proof:
    original: Counter[Place]
    copy: Counter[Place]

    @property
    def same(self) -> bool:
        return self.original == self.copy

    def lines(self, limit: int = 50) -> list[str]:
        """What to print: per rule, how many findings each side has; then each difference
        (rule, file, line and column only: never a value)."""
        rules = sorted({p[0] for p in self.original} | {p[0] for p in self.copy})
        total = sum(self.original.values())
        out = [
            f"proof: validate gives {total} finding(s) on the original and "
            f"{sum(self.copy.values())} on the copy"
        ]
        for rule in rules:
            a = sum(n for p, n in self.original.items() if p[0] == rule)
            b = sum(n for p, n in self.copy.items() if p[0] == rule)
            mark = "same places" if a == b and not _differ(self, rule) else "DIFFERENT"
            out.append(f"  {rule:<24} original {a:>7}  copy {b:>7}  {mark}")
        only = [
            ("original only", self.original - self.copy),
            ("copy only", self.copy - self.original),
        ]
        shown_lines = 0
        for label, diff in only:
            for (rule, file, line, column), n in sorted(diff.items()):
                if shown_lines < limit:
                    where = ":".join(str(x) for x in (file, line) if x)
                    col = f" column {column}" if column else ""
                    out.append(
                        f"  {label}: {rule} at {where or '(source)'}{col}"
                        + (f" ×{n}" if n > 1 else "")
                    )
                shown_lines += 1
        if shown_lines > limit:
            out.append(f"  … and {shown_lines - limit} more difference(s)")
        out.append(
            "SAME: the copy gives the same rule codes on the same files, lines and columns"
            if self.same
            else "DIFFERENT: the copy does not give the same findings (see above)"
        )
        return out


def _differ(proof: Proof, rule: str) -> bool:
    return any(
        proof.original[p] != proof.copy[p]
        for p in set(proof.original) | set(proof.copy)
        if p[0] == rule
    )


def places(findings: Iterable[Finding]) -> Counter[Place]:
    return Counter((f.rule, f.file or "", f.line or 0, f.column or "") for f in findings)


def validate_findings(path: str, options: Options) -> list[Finding]:
    """Every finding ``validate`` reports on a OneRoster source."""
    from naviance_pipeline.oneroster.source import SourceUnreadable, open_source
    from naviance_pipeline.oneroster.stages import build_all

    try:
        source = open_source(path, options)
        stages = build_all(source, options)
    except SourceUnreadable as exc:
        return [exc.finding]
    return [*source.findings, *(f for stage in stages for f in stage.findings)]


def prove(original: str, copy: str, options: Options) -> Proof:
    return Proof(
        places(validate_findings(original, options)), places(validate_findings(copy, options))
    )
