"""naviance_pipeline: builds, validates and delivers Naviance's OneRoster v1.1 package."""
