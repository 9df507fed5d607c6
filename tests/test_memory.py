import subprocess
import sys

from conftest import ROOT


def test_a_child_process_reports_its_own_peak_not_its_parents():
    # The parent holds 600 MiB when it starts the child; Linux's ru_maxrss would hand that peak down to it.
    parent = """
import subprocess, sys
held = bytearray(600 * 2**20)
held[::4096] = b"x" * len(held[::4096])
child = "from helpers.memory import peak_rss_mib; print(peak_rss_mib())"
print(subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout)
"""
    done = subprocess.run([sys.executable, "-c", parent], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    child_peak = float(done.stdout.strip())
    assert 0 < child_peak < 300, child_peak
