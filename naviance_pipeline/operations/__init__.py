"""Running the pipeline: settings, the districts file, where data lives on disk, crash-safe
temporary names, frame storage, alerts and retention. No Dagster here."""
