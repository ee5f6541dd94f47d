"""Stored frames: folders of Parquet parts, replaced whole, owner-only; old single files read."""

from __future__ import annotations

import stat

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from upath import UPath

from naviance_pipeline.oneroster.spec import STRING
from naviance_pipeline.operations import frames
from naviance_pipeline.operations.frames import frame_columns, frame_parts, read_frame, write_frame


def _frame(rows: int, tag: str = "s") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sourcedId": [f"{tag}{i:05d}" for i in range(rows)],
            "identifier": [f"00{i}" for i in range(rows)],  # leading zeros stay text
            "grades": ["09,10"] * rows,
        },
        dtype=STRING,
    )


def _names(path: UPath) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_a_frame_is_stored_as_parts_and_read_back_whole_in_order(tmp_path):
    path = UPath(tmp_path) / "users" / "2026-11-24.parquet"
    frame = _frame(7)

    write_frame(frame, path, part_rows=3)

    assert _names(path) == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    assert [pq.read_metadata(str(p)).num_rows for p in frame_parts(path)] == [3, 3, 1]
    back = read_frame(path)
    pd.testing.assert_frame_equal(back, frame)
    assert back["identifier"].tolist()[:2] == ["000", "001"]
    assert all(back[c].dtype == STRING for c in back.columns)


def test_parts_are_read_in_number_order_past_ten(tmp_path):
    path = UPath(tmp_path) / "2026-11-24.parquet"
    frame = _frame(12)

    write_frame(frame, path, part_rows=1)

    assert len(frame_parts(path)) == 12
    assert frame_parts(path)[10].name == "part-10.parquet"
    assert read_frame(path)["sourcedId"].tolist() == frame["sourcedId"].tolist()


def test_only_the_columns_asked_for_are_read(tmp_path):
    path = UPath(tmp_path) / "2026-11-24.parquet"
    write_frame(_frame(5), path, part_rows=2)

    assert frame_columns(path) == ["sourcedId", "identifier", "grades"]
    back = read_frame(path, ["grades"])
    assert list(back.columns) == ["grades"]
    assert len(back) == 5


def test_a_small_or_empty_frame_is_one_part(tmp_path):
    small, empty = UPath(tmp_path) / "small.parquet", UPath(tmp_path) / "empty.parquet"

    write_frame(_frame(4), small)
    write_frame(_frame(0), empty)

    assert _names(small) == ["part-0.parquet"]
    assert _names(empty) == ["part-0.parquet"]
    assert read_frame(empty).columns.tolist() == ["sourcedId", "identifier", "grades"]
    assert len(read_frame(empty)) == 0


def test_a_new_frame_replaces_every_part_of_the_old_one(tmp_path):
    path = UPath(tmp_path) / "2026-11-24.parquet"
    write_frame(_frame(9, "old"), path, part_rows=3)

    write_frame(_frame(2, "new"), path, part_rows=3)

    assert _names(path) == ["part-0.parquet"]  # no stale part-1, part-2 of the old frame
    assert read_frame(path)["sourcedId"].tolist() == ["new00000", "new00001"]
    assert _names(path.parent) == ["2026-11-24.parquet"]  # no temporary folder left


def test_a_frame_stored_as_one_file_before_parts_is_read_and_replaced(tmp_path):
    path = UPath(tmp_path) / "2026-11-24.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(3, "file"), preserve_index=False), str(path))

    assert frame_parts(path) == [path]
    assert read_frame(path)["sourcedId"].tolist() == ["file00000", "file00001", "file00002"]
    assert frame_columns(path) == ["sourcedId", "identifier", "grades"]

    write_frame(_frame(1, "dir"), path)

    assert path.is_dir()
    assert read_frame(path)["sourcedId"].tolist() == ["dir00000"]


def test_parts_are_owner_only(tmp_path):
    path = UPath(tmp_path) / "users" / "2026-11-24.parquet"

    write_frame(_frame(5), path, part_rows=2)

    folder = tmp_path / "users" / "2026-11-24.parquet"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = [stat.S_IMODE((folder / p.name).stat().st_mode) for p in frame_parts(path)]
    assert modes == [0o600] * 3


def test_a_failed_write_keeps_the_old_frame_and_leaves_no_temporary_folder(tmp_path, monkeypatch):
    path = UPath(tmp_path) / "2026-11-24.parquet"
    write_frame(_frame(4, "old"), path, part_rows=2)
    real = frames.pq.write_table
    calls = []

    def failing_second_part(table, where, **kwargs):
        calls.append(len(table))
        if len(calls) == 2:
            raise OSError("disk full")
        return real(table, where, **kwargs)

    # The one fault injected here: a real disk cannot be made to fill on cue.
    monkeypatch.setattr(frames.pq, "write_table", failing_second_part)

    with pytest.raises(OSError, match="disk full"):
        write_frame(_frame(4, "new"), path, part_rows=2)

    assert read_frame(path)["sourcedId"].tolist() == [f"old{i:05d}" for i in range(4)]
    assert _names(path.parent) == ["2026-11-24.parquet"]


def test_frames_round_trip_on_a_non_local_root():
    path = UPath("memory://frames-test/users/2026-11-24.parquet")
    write_frame(_frame(5, "a"), path, part_rows=2)
    write_frame(_frame(3, "b"), path, part_rows=2)

    assert [p.name for p in frame_parts(path)] == ["part-0.parquet", "part-1.parquet"]
    assert read_frame(path)["sourcedId"].tolist() == ["b00000", "b00001", "b00002"]
    path.fs.rm("/frames-test", recursive=True)


def test_nothing_stored_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_frame(UPath(tmp_path) / "2026-11-24.parquet")
    empty = UPath(tmp_path) / "empty.parquet"
    empty.mkdir()
    with pytest.raises(FileNotFoundError):
        read_frame(empty)
