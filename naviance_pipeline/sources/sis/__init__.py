"""SIS sources beyond OneRoster exports: mapped CSV exports and SQL databases; no Dagster here."""
