"""The validation report as one HTML page, rendered from a jinja2 template with autoescaping on.

The default template (``templates/report.html.j2``) is one self-contained page: inline CSS, no
scripts, no external assets, so it can be mailed, archived or opened from the data root as is.
A district may brand it with its own template file (``NAVIANCE_REPORT_TEMPLATE``), which can
extend the default (``{% extends "naviance/report.html.j2" %}``) and replace a block.
docs/report-template.md lists what a template receives: the report (the same PII-free dict as
``report.json``) and nothing else. Every value is escaped: a message quoting a source value
must never become markup.
"""

from __future__ import annotations

from pathlib import Path

import jinja2

TEMPLATE_ENV = "NAVIANCE_REPORT_TEMPLATE"
DEFAULT_TEMPLATE = "naviance/report.html.j2"


class ReportTemplateError(ValueError):
    """The district's report template cannot be read or rendered (one line, names the file)."""


def template_setting() -> str | None:
    """The district's template file (``NAVIANCE_REPORT_TEMPLATE``), or None for the default.
    The one place the setting is read."""
    from naviance_pipeline.operations.settings import Settings

    return Settings.from_env().report_template or None


def _is_count(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _environment(folder: Path | None) -> jinja2.Environment:
    default = jinja2.PackageLoader("naviance_pipeline.reporting", "templates")
    loaders: list[jinja2.BaseLoader] = [jinja2.PrefixLoader({"naviance": default})]
    if folder is not None:
        loaders.append(jinja2.FileSystemLoader(folder))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt variable is an error, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["thousands"] = lambda value: f"{value:,}"
    env.tests["count"] = _is_count
    return env


def render_html(report: dict, template: str | None = None) -> str:
    """The report page from ``template`` (a file path; default: ``template_setting()``, else
    the bundled page). Raises ReportTemplateError naming the file and the problem."""
    path = template or template_setting()
    if path is None:
        return _render(_environment(None), DEFAULT_TEMPLATE, report)
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ReportTemplateError(f"the report template {path} ({TEMPLATE_ENV}) is not a file")
    try:
        return _render(_environment(file.parent), file.name, report)
    except (jinja2.TemplateError, OSError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ReportTemplateError(
            f"the report template {path} ({TEMPLATE_ENV}) cannot be used{where}: {detail}"
        ) from None


def _render(env: jinja2.Environment, name: str, report: dict) -> str:
    years = sorted({y for school in report["class_years"] for y in school["class_years"]})
    status = str(report["verdict"]["status"])
    verdict_class = next((c for c in ("delivered", "blocked") if status.startswith(c)), "pending")
    return env.get_template(name).render(
        report=report, class_years=years, verdict_class=verdict_class
    )
