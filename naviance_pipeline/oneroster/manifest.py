"""manifest.csv of the package (spec section 4): the rows of ``spec.MANIFEST_ROWS`` with the
source system's name and the district code filled in from the options."""

from __future__ import annotations

import pandas as pd

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import MANIFEST_HEADER, MANIFEST_ROWS, STRING


def manifest_frame(options: Options) -> pd.DataFrame:
    """Columns propertyName, value: the rows of spec.MANIFEST_ROWS in order, with
    source.systemName = options.source_system_name and source.systemCode =
    options.district_code. ValueError if either is blank (section 4: never blank)."""
    # Stripped: configuration typed with stray spaces must not become a quoted " value".
    configured = {
        "source.systemName": (options.source_system_name or "").strip(),
        "source.systemCode": (options.district_code or "").strip(),
    }
    for prop, value in configured.items():
        if not value:
            raise ValueError(f"manifest.csv: {prop} must not be blank; configure it")
    rows = [(prop, configured[prop] if value is None else value) for prop, value in MANIFEST_ROWS]
    return pd.DataFrame(rows, columns=list(MANIFEST_HEADER), dtype=STRING)
