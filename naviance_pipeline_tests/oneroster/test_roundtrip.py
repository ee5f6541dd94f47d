"""Property: whatever text the strict writer writes, the lenient reader reads back unchanged."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naviance_pipeline.oneroster.csvread import read_table
from naviance_pipeline.oneroster.spec import USERS
from naviance_pipeline.oneroster.writer import write_csv

HEADER = [*USERS.header, "metadata.classYear"]

# Any printable text, with the awkward cases made likely: commas, quotes, leading zeros,
# booleans, accents. No CR/LF (the writer refuses them) and no edge whitespace (the reader
# trims it, by design: CSV-WHITESPACE).
awkward = st.sampled_from(
    [
        "",
        ",",
        '"',
        '""',
        "a,b",
        'say "hi"',
        "00123",
        "0",
        "true",
        "FALSE",
        "José",
        "Zoë",
        "Nguyễn",
        "O'Brien",
        "1.23457E+11",
        "{SIS:1}",
        "a b",
        "=1+1",
        "NULL",
        "nan",
        "#N/A",
    ]
)
printable = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30
).filter(lambda s: s == s.strip())
value = st.one_of(awkward, printable)
sourced_id = st.text("0123456789abcXYZ-._", min_size=1, max_size=12)


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    columns = {c: draw(st.lists(value, min_size=n, max_size=n)) for c in HEADER}
    columns["sourcedId"] = draw(st.lists(sourced_id, min_size=n, max_size=n))
    return pd.DataFrame(columns, dtype=pd.StringDtype("pyarrow"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_write_csv_then_read_table_gives_back_the_same_values(frame: pd.DataFrame):
    table = read_table(write_csv(frame, HEADER), USERS)

    assert table.findings == []
    assert list(table.frame.columns) == HEADER
    assert list(table.frame.index) == list(range(2, len(frame) + 2))  # header is line 1
    read = table.frame.reset_index(drop=True)
    pd.testing.assert_frame_equal(read, frame, check_dtype=False, check_index_type=False)
