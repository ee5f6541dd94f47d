"""Options that change what the package holds. Everything date-dependent takes ``as_of``
explicitly: nothing in the core reads the wall clock (spec section 10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from naviance_pipeline.oneroster.spec import CLASS_YEAR_SOURCES, DEFAULT_ROLLOVER, TITLE_COLUMN


@dataclass(frozen=True)
class Options:
    as_of: date
    include_staff: bool = False
    rollover: tuple[int, int] = DEFAULT_ROLLOVER  # (month, day) the school year rolls over
    class_year_sources: tuple[str, ...] = CLASS_YEAR_SOURCES
    title_column: str = TITLE_COLUMN  # source column mapped to metadata.title for staff
    source_system_name: str = "SIS"
    district_code: str = "district"
    raw_sis_export: bool = False  # a raw SIS export needs no manifest.csv (section 10)
    max_expanded_bytes: int = 20_000_000_000  # SRC-TOO-LARGE: total uncompressed size
    max_compression_ratio: float = 200.0  # SRC-TOO-LARGE: zip-bomb ratio per entry

    def school_year_end(self) -> int:
        """E in section 8: the calendar year the current school year ends in."""
        month, day = self.rollover
        return (
            self.as_of.year
            if (self.as_of.month, self.as_of.day) < (month, day)
            else (self.as_of.year + 1)
        )
