"""The notebooks' first cell, run as a learner's Colab runtime would run it.

No test here can run on Colab itself. What is simulated instead:

* **the runtime's packages**: a throwaway virtual environment seeded with Colab's
  own versions of the packages the course touches (``colab/runtime-*.txt``,
  Google's published list), except torch: Colab's CUDA build cannot be installed
  here, so the course's own CPU build of the pinned torch stands in for it,
  linked in rather than installed again (as Colab's torch is there before the cell);
* **the clone**: the cell clones the course from this checkout's committed state
  (``COURSE_CLONE_URL``), not from GitHub;
* **Python**: the machine's Python runs the cell (Colab's is 3.13); a separate
  check resolves ``requirements-colab.txt`` for Python 3.13 against Colab's list.

The cell is read from the notebook (the same text, not a copy) and executed for
real: clone, install, then the next cell, then the first cell again.
"""
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.install import COLAB_REQUIREMENTS, OWNED, canonical, pins

from conftest import ROOT

RUNTIME = sorted((ROOT / "colab").glob("runtime-*.txt"))[-1]
#: what the seeded environment gets at Colab's versions: what the first two cells import, and what our install moves
SEEDED = ["numpy", "pandas", "pyarrow", "transformers", "tokenizers", "huggingface_hub", "accelerate", "peft",
          "datasets", "sentence-transformers", "safetensors", "PyYAML", "tqdm", "requests", "psutil"]
#: pure-Python packages in requirements-colab.txt's closure that PyPI has as source only: built here as wheels
SOURCE_ONLY = ["sqlitedict==2.1.0", "word2number==1.1", "rouge_score==0.1.2"]
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)] + ["manylinux2014_x86_64"]


def colab_versions() -> dict[str, str]:
    return pins(RUNTIME)


def notebook_cells(name="01_curation.ipynb") -> list[str]:
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def pip(python, *args, **kwargs):
    done = subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, **kwargs)
    said = "\n".join(line for line in done.stderr.splitlines() if "is ignored: it is neither" not in line)
    assert done.returncode == 0, said[-3000:]
    return done


def test_colab_requirements_are_the_course_pins():
    course = pins(ROOT / "requirements.txt")
    for name, version in pins(COLAB_REQUIREMENTS).items():
        assert course.get(name) == version, f"{name}: requirements-colab.txt has {version}, requirements.txt " \
                                            f"{course.get(name)}"
        assert not OWNED.match(name), f"{name} belongs to the runtime and must not be installed over it"


def test_colab_requirements_resolve_beside_colabs_runtime_for_python_3_13(tmp_path):
    """Every Colab package stays at Colab's version except exactly the lines of requirements-colab.txt."""
    colab = colab_versions()
    ours = pins(COLAB_REQUIREMENTS)
    # Colab's torch comes from PyTorch's own index, which this machine cannot reach: a wheel holding only its name
    # and version stands in for it during the resolution (nothing is installed).
    stub = tmp_path / "stubs"
    stub.mkdir()
    torch = colab["torch"]
    info = f"torch-{torch}.dist-info"
    with zipfile.ZipFile(stub / f"torch-{torch}-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {torch}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: course\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")
    pip(sys.executable, "wheel", "--quiet", "--no-deps", "-w", str(stub), *SOURCE_ONLY)
    constraints = tmp_path / "colab-keeps.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in colab.items()
                                   if n not in ours and not re.match(r"^(torch.+|triton|nvidia-.*)$", n)))
    report = tmp_path / "report.json"
    env = {**os.environ, "PIP_CONSTRAINT": ""}  # this machine caps torch for its own installs; Colab does not
    pip(sys.executable, "install", "--dry-run", "--quiet", "--python-version", "3.13", "--only-binary=:all:",
        *[f"--platform={p}" for p in PLATFORMS], "--find-links", str(stub), "--target", str(tmp_path / "t"),
        "-r", str(COLAB_REQUIREMENTS), "-c", str(constraints), "--report", str(report), env=env, timeout=600)
    resolved = {canonical(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    moved = {n for n, v in resolved.items() if colab.get(n) != v}
    assert moved - set(ours) == set(), "requirements-colab.txt would also install these; pin them there"
    assert not [n for n in moved if OWNED.match(n)]


@pytest.fixture(scope="module")
def colab_like_python(tmp_path_factory):
    """A throwaway environment holding Colab's versions of the packages the course touches (torch: see above)."""
    import torch

    venv = tmp_path_factory.mktemp("colab") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The stand-in torch: this environment's own build, put on the new one's path through a folder of links.
    site = Path(torch.__file__).resolve().parent.parent
    stand_in = venv.parent / "torch-stand-in"
    stand_in.mkdir()
    for entry in site.iterdir():
        if re.match(r"^(torch|torchgen|functorch)$|^torch-.*\.dist-info$", entry.name):
            (stand_in / entry.name).symlink_to(entry)
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    (venv_site / "torch-stand-in.pth").write_text(f"{stand_in}\n")
    constraints = venv.parent / "colab-versions.txt"
    # setuptools: the stand-in torch needs a newer one than Colab's; the real one does not
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in colab_versions().items()
                                   if not re.match(r"^(torch.*|triton|nvidia-.*|setuptools)$", n))
                           + f"torch=={torch.__version__}\n")
    torch_needs = ["filelock", "typing-extensions", "setuptools", "sympy", "networkx", "jinja2", "fsspec"]
    pip(python, "install", "--quiet", *SEEDED, *torch_needs, "-c", str(constraints), timeout=1200)
    return python


def installed_version(python, name):
    return subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                          capture_output=True, text=True).stdout.strip()


def test_the_first_cell_clones_installs_runs_the_next_cell_and_is_a_no_op_the_second_time(colab_like_python,
                                                                                          tmp_path):
    python = colab_like_python
    first, second = notebook_cells()[:2]
    (tmp_path / "first.py").write_text(first)
    (tmp_path / "first_then_next.py").write_text(first + "\n" + second)
    runtime = tmp_path / "content"  # Colab's working folder
    runtime.mkdir()
    # HOME stays: pip's cache of the course's wheels makes the install quicker, as Colab's mirror does.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COURSE_PROFILE": "ci",
           "COURSE_CLONE_URL": ROOT.as_uri(), "PIP_CONSTRAINT": ""}
    owned = {name: installed_version(python, name) for name in ("torch", "numpy")}
    assert owned["numpy"] == colab_versions()["numpy"]

    def run(script):
        done = subprocess.run([str(python), str(tmp_path / script)], cwd=runtime, env=env, capture_output=True,
                              text=True, timeout=1800)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    out = run("first.py")
    assert f"cloned {ROOT.as_uri()} into course/" in out
    assert "installing" in out and "set-up done in" in out
    assert (runtime / "course" / "helpers" / "install.py").is_file()
    for name, version in owned.items():
        assert installed_version(python, name) == version, f"the cell replaced the runtime's {name}"
    assert installed_version(python, "transformers") == pins(COLAB_REQUIREMENTS)["transformers"]

    # After a restart (a new process) the next cell runs: helpers import and the profile is set up.
    out = run("first_then_next.py")
    assert "cloned" not in out and "nothing to do" in out
    assert re.search(r"^name\s+ci$", out, re.M) and "model_id" in out

    out = run("first.py")  # a second run of the cell changes nothing
    assert "cloned" not in out and "installing" not in out and "nothing to do" in out
