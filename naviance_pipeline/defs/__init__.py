"""The Dagster shell: assets, checks, resources, the IO manager, jobs, schedules and sensors.

Everything here translates between Dagster and the domain packages beside it (``oneroster``,
``sources``, ``delivery``, ``reporting``, ``operations``), which import no Dagster.
``naviance_pipeline/definitions.py`` builds the code location from these factories.
"""
