"""Options that change what the package holds. Everything date-dependent takes ``as_of``
explicitly: nothing in the core reads the wall clock (spec section 10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from naviance_pipeline.oneroster.spec import (
    CLASS_YEAR_SOURCES,
    DEFAULT_ROLLOVER,
    MAX_PACKAGE_BYTES,
    TITLE_COLUMN,
)

# The most a source's needed entries (manifest, orgs, users, demographics) may hold, expanded:
# SRC-TOO-LARGE above it, before anything is read or inflated. Derived from Naviance's package
# limit (MAX_PACKAGE_BYTES, 1,000,000,000 bytes, PKG-SIZE): a package's CSVs are about the size
# of the source's needed entries (the sample district: 24.4 MB read, 24.0 MB written) and
# deflate about 5:1 (24.0 MB to 4.6 MB), so needed entries above 5 × 1 GB make a package that
# Naviance cannot take anyway. `validate` peaks at about 0.25 GB + 4.5 × the needed entries
# (the 1 M-user sample: 245 MB, 1.27 GB peak; README, Limits), so reading a source at this limit
# needs about 23 GB: set NAVIANCE_MAX_SOURCE_BYTES lower on a smaller machine.
CSV_DEFLATE_RATIO = 5
DEFAULT_MAX_SOURCE_BYTES = CSV_DEFLATE_RATIO * MAX_PACKAGE_BYTES


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
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES  # SRC-TOO-LARGE: the needed entries

    def school_year_end(self) -> int:
        """E in section 8: the calendar year the current school year ends in."""
        month, day = self.rollover
        return (
            self.as_of.year
            if (self.as_of.month, self.as_of.day) < (month, day)
            else (self.as_of.year + 1)
        )
