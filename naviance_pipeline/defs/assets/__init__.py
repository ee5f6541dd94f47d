"""The pipeline's assets, one module per stage group (extract, oneroster, delivery)."""
