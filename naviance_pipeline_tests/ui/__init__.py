"""The Dagster UI tested as a person uses it: ``dagster dev``, GraphQL and headless Chromium."""
