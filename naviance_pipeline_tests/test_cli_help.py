"""``naviance-pipeline --help``: every command with its purpose, every option with help and an
example, each command's examples (which parse) and exit codes, ``--version``; and the exit codes
each ``--help`` lists are the codes the command returns (every one of them is produced here)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from naviance_pipeline.cli import parser
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline_tests.pipeline_helpers import first_student_editor, rewrite_zip

BIN = Path(sys.executable).parent
WORKSPACE = Path(__file__).resolve().parents[1] / "workspace.yaml"
PROG = "naviance-pipeline"


def _commands() -> dict[str, argparse.ArgumentParser]:
    top = parser()
    (sub,) = (a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _exit_codes(help_text: str) -> dict[int, str]:
    """The ``exit codes:`` block of a --help: {code: meaning}."""
    block = help_text.split("\nexit codes:\n", 1)[1]
    codes = {}
    for line in block.splitlines():
        match = re.fullmatch(r"  (\d+) +(.+)", line)
        if not match:
            break
        codes[int(match.group(1))] = match.group(2)
    return codes


def test_every_option_of_every_command_has_help_with_an_example():
    missing, no_example = [], []
    for name, p in {PROG: parser(), **_commands()}.items():
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(label)
            elif action.nargs != 0 and "e.g." not in action.help:  # it takes a value
                no_example.append(label)
    assert not missing, f"options without help: {missing}"
    assert not no_example, f"options taking a value without an example (e.g.): {no_example}"


def test_the_top_level_help_names_every_command_with_its_purpose():
    top = parser().format_help()
    (sub,) = (a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    purposes = {a.dest: a.help for a in sub._choices_actions}
    assert set(purposes) == set(_commands()) and len(purposes) == 14
    flat = " ".join(top.split())
    for name, purpose in purposes.items():
        assert purpose, f"{name} has no purpose in the top-level help"
        assert f"{name} {purpose}" in flat, name
        # ... and the command's own --help opens with it.
        own = " ".join(_commands()[name].format_help().split()).lower()
        assert " ".join(purpose.split()[:4]).lower() in own, name
    assert "exit codes:" in top and "COMMAND --help" in top


@pytest.mark.parametrize("name", sorted(_commands()))
def test_each_command_help_has_examples_that_parse_and_its_exit_codes(name, tmp_path, monkeypatch):
    text = _commands()[name].format_help()
    assert "\nexamples:\n" in text and "\nexit codes:\n" in text, text
    examples = text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert examples and all(e.startswith(f"  {PROG} {name}") for e in examples), examples
    monkeypatch.chdir(tmp_path)  # relative --out / --findings-csv paths resolve here
    for example in examples:
        command = re.split(r"\s+[>(]", example.strip())[0]  # no redirection, no comment
        parser().parse_args(command.split()[1:])  # raises SystemExit(2) if it does not parse
    codes = _exit_codes(text)
    assert 0 in codes and 2 in codes, codes
    assert all(meaning.strip() for meaning in codes.values())


def test_version_is_the_installed_package_version():
    proc = subprocess.run([str(BIN / PROG), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{PROG} {version('naviance_pipeline')}"


# ---- every exit code each --help lists, produced by running the command ----


def _env(home: Path, source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        **env,
        "NAVIANCE_HOME": str(home),
        "NAVIANCE_SOURCE_URL": str(source),
        "NAVIANCE_PARTITIONS_START": "2026-01-01",
        "DAGSTER_HOME": str(dagster_home),
    }


def _birth_date(value: str):
    def edit(rows):
        rows[1][rows[0].index("birthDate")] = value
        return rows

    return edit


@pytest.mark.sftp
def test_each_documented_exit_code_is_what_the_command_returns(
    tmp_path, tiny_district, sftp_server
):
    bad = rewrite_zip(
        tiny_district, tmp_path / "bad.zip", "users.csv", first_student_editor({"role": "pupil"})[0]
    )
    broken_mapping = tmp_path / "broken.yaml"
    broken_mapping.write_text("users: 3\n")
    unloadable = tmp_path / "workspace.yaml"  # a code location that does not import
    unloadable.write_text("load_from:\n  - python_module: {module_name: no_such_module_x}\n")
    good, failing = _env(tmp_path / "good", tiny_district), _env(tmp_path / "bad", bad)
    day, never = "2026-11-24", "2026-11-20"
    # anonymise: a key; a birth date the day before the as-of date, moved past it in the copy.
    keyed = {**good, "NAVIANCE_ANONYMISE_KEY": "a-district-secret-0123"}
    near = rewrite_zip(
        tiny_district, tmp_path / "near.zip", "demographics.csv", _birth_date("2026-11-23")
    )
    src = ["--as-of", day]
    cases = [  # in order: redeliver, report and diff read what run stored
        ("validate", 0, ["validate", str(tiny_district), *src], good),
        ("validate", 1, ["validate", str(bad), *src], good),
        ("validate", 2, ["validate", str(tmp_path / "missing.zip")], good),
        ("package", 0, ["package", str(tiny_district), "--out", str(tmp_path / "o1"), *src], good),
        ("package", 1, ["package", str(bad), "--out", str(tmp_path / "o2"), *src], good),
        ("package", 2, ["package", str(tmp_path / "missing.zip"), "--out", str(tmp_path)], good),
        ("anonymise", 0, ["anonymise", str(tiny_district), "--out", str(tmp_path / "a0"),
                          *src], keyed),
        ("anonymise", 1, ["anonymise", str(near), "--out", str(tmp_path / "a1"), *src], keyed),
        ("anonymise", 2, ["anonymise", str(tiny_district), "--out", str(tmp_path / "a2")], good),
        ("sample-district", 0, ["sample-district", "--out", str(tmp_path / "s.zip"),
                                "--students", "5"], good),
        ("sample-district", 2, ["sample-district", "--out", str(tmp_path / "s.db"),
                                "--format", "sqlite"], good),
        ("mapping", 0, ["mapping", "show", "powerschool"], good),
        ("mapping", 1, ["mapping", "check", str(broken_mapping)], good),
        ("mapping", 2, ["mapping", "show", "skyward"], good),
        ("run", 0, ["run", "--date", day, "--no-deliver"], good),
        ("run", 1, ["run", "--date", day], failing),
        ("run", 2, ["run", "--date", "2999-01-01"], good),
        ("redeliver", 0, ["redeliver", "--date", day], good),
        ("redeliver", 1, ["redeliver", "--date", never], good),
        ("redeliver", 2, ["redeliver", "--date", day, "--override", "GRD-NOPE"], good),
        ("backfill", 0, ["backfill", "--from", day, "--workspace", str(WORKSPACE)], good),
        ("backfill", 1, ["backfill", "--from", day, "--workspace", str(unloadable)], good),
        ("backfill", 2, ["backfill", "--from", day, "--to", never], good),
        ("report", 0, ["report", "--date", day], good),
        ("report", 1, ["report", "--date", never], good),
        ("report", 2, ["report", "--date", "yesterday"], good),
        ("diff", 0, ["diff", "--date", day, "--against", day], good),
        ("diff", 1, ["diff", "--date", never, "--against", day], good),
        ("diff", 2, ["diff", "--date", day, "--against", "2026-02-30"], good),
        ("purge", 0, ["purge", "--dry-run"], good),
        ("purge", 2, ["purge", "--keep-days", "-1"], good),
        ("schema", 0, ["schema", "users"], good),
        ("schema", 2, ["schema", "classes"], good),
        ("rules", 0, ["rules"], good),
        ("rules", 2, ["rules", "--bogus"], good),
        ("sftp-host-key", 0, ["sftp-host-key", f"{sftp_server.host}:{sftp_server.port}"], good),
        ("sftp-host-key", 1, ["sftp-host-key", "127.0.0.1:1"], good),
        ("sftp-host-key", 2, ["sftp-host-key", "host:0"], good),
    ]  # fmt: skip
    documented = {
        (name, code) for name, p in _commands().items() for code in _exit_codes(p.format_help())
    }
    assert {(name, code) for name, code, _, _ in cases} == documented

    for _, code, argv, env in cases:
        proc = subprocess.run(
            [str(BIN / PROG), *argv], capture_output=True, text=True, env=env, timeout=600
        )
        assert proc.returncode == code, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
        assert "Traceback" not in proc.stderr, (argv, proc.stderr[-2000:])
        if code == 2:
            assert (proc.stdout + proc.stderr).strip(), argv  # says why

    # The run sent nothing; redeliver sent what it built.
    archived = tmp_path / "good" / "data" / "districts" / "sample-district" / "packages" / day
    assert (tmp_path / "good" / "outbox" / ZIP_NAME).read_bytes() == (
        archived / ZIP_NAME
    ).read_bytes()

    # The top-level help lists every code the commands return, and 141 (reader gone).
    top = _exit_codes(parser().format_help())
    assert set(top) == {code for _, code in documented} | {141}
    read, write = os.pipe()
    os.close(read)
    piped = subprocess.run(
        [str(BIN / PROG), "rules"], stdout=write, stderr=subprocess.PIPE, timeout=120
    )
    os.close(write)
    assert piped.returncode == 141


def test_the_readme_command_line_section_names_every_command_and_option():
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## The command line\n", 1)[1].split("\n## ", 1)[0]
    synopsis = section.split("```bash\n", 1)[1].split("```", 1)[0]
    missing = []
    for name, p in _commands().items():
        lines = [line for line in synopsis.splitlines() if f"naviance-pipeline {name} " in line]
        assert lines, f"README's synopsis has no line for {name}"
        # The command's line and its continuation lines (indented) up to the next command.
        at = synopsis.splitlines().index(lines[0])
        block = [lines[0]]
        for line in synopsis.splitlines()[at + 1 :]:
            if not line.startswith("    "):
                break
            block.append(line)
        text = " ".join(block)
        options = [o for a in p._actions for o in a.option_strings if o.startswith("--")]
        inherited = name == "package" and "the options of validate" in text
        missing += [
            f"{name} {o}"
            for o in options
            if o != "--help" and o not in text and not (inherited and o != "--out")
        ]
    assert not missing, f"README's command-line section lacks: {missing}"
    for flag in ("--version", "--no-deliver", "--findings-csv", "--limit", "exit codes"):
        assert flag.lower() in section.lower()
