"""The HTML report from a jinja2 template: a district's own template (NAVIANCE_REPORT_TEMPLATE)
replaces the bundled one, values stay escaped, no PII reaches it, and a missing or broken
template is one line naming the file (``naviance-pipeline report`` exits 2)."""

from __future__ import annotations

import pytest

from naviance_pipeline import cli
from naviance_pipeline.reporting.html import TEMPLATE_ENV, ReportTemplateError, render_html
from naviance_pipeline.reporting.report import build_report, write_report
from naviance_pipeline_tests.reporting import PII_MARKERS
from naviance_pipeline_tests.reporting.test_report import (
    DAY,
    SCRIPT,
    WITH_ERRORS,
    _layout,
    _package,
)

BRANDED = """{% extends "naviance/report.html.j2" %}
{% block header %}<p class="brand">Unified School District — Counseling</p>
{{ super() }}{% endblock %}
"""


@pytest.fixture
def report(tmp_path):
    layout = _layout(tmp_path / "data", WITH_ERRORS)
    _package(layout)
    return layout, build_report(layout, DAY)


def test_a_district_template_named_in_the_setting_is_used(tmp_path, monkeypatch, report):
    layout, built = report
    template = tmp_path / "branding" / "ours.html.j2"
    template.parent.mkdir()
    template.write_text(BRANDED)
    monkeypatch.setenv(TEMPLATE_ENV, str(template))

    _, html_path = write_report(layout, DAY, built)

    page = html_path.read_text()
    assert '<p class="brand">Unified School District — Counseling</p>' in page
    assert page.index('class="brand"') < page.index("<h1>")  # the block replaced, then super()
    assert '<section id="first-findings">' in page and 'class="verdict blocked"' in page
    monkeypatch.delenv(TEMPLATE_ENV)
    assert "brand" not in render_html(built)  # unset: the bundled page


def test_a_district_template_cannot_turn_data_into_markup(tmp_path, report):
    _, built = report
    template = tmp_path / "plain.html"
    template.write_text(
        "{% for rule, found in report.first_findings.items() %}{% for f in found %}"
        "<p>{{ f.message }}</p>{% endfor %}{% endfor %}<p>{{ report.by_school[1].name }}</p>"
    )

    page = render_html(built, str(template))

    assert SCRIPT not in page and "<script" not in page
    assert "bad grade &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<p>South &amp; Middle</p>" in page


def test_a_template_showing_everything_it_gets_shows_no_pii(tmp_path, report):
    _, built = report
    template = tmp_path / "everything.html"
    template.write_text("{{ report }}{{ report|tojson }}{{ class_years }}{{ verdict_class }}")

    page = render_html(built, str(template))

    assert "South &amp; Middle" in page  # the report is there...
    for marker in PII_MARKERS:  # ...and nothing of the frames' PII columns
        assert marker not in page


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "is not a file"),
        ("{% for x in report.stages %}<p>{{ x.stage }}</p>", "cannot be used at line 1: "),
        ("<p>{{ report.no_such_key }}</p>", "cannot be used: 'dict object' has no attribute"),
        ('{% extends "naviance/none.html" %}', "cannot be used: naviance/none.html"),
    ],
    ids=["missing", "syntax error", "undefined variable", "missing parent"],
)
def test_a_missing_or_broken_template_is_one_line_naming_it(
    tmp_path, monkeypatch, capsys, report, text, problem
):
    layout, built = report
    template = tmp_path / "broken.html.j2"
    if text is not None:
        template.write_text(text)

    with pytest.raises(ReportTemplateError) as failed:
        render_html(built, str(template))
    message = str(failed.value)
    assert message.startswith(f"the report template {template} ({TEMPLATE_ENV})")
    assert problem in message and "\n" not in message

    # `naviance-pipeline report` says the same in one line and exits 2 (no traceback).
    monkeypatch.setenv("NAVIANCE_DATA_ROOT", layout.root)
    monkeypatch.setenv("NAVIANCE_DISTRICT", layout.district)
    monkeypatch.setenv(TEMPLATE_ENV, str(template))
    layout.raw_dir(DAY).mkdir(parents=True)
    with pytest.raises(SystemExit) as exited:
        cli.main(["report", "--date", DAY])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err == f"naviance-pipeline: error: {message}\n"
