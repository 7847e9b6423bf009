"""What the measurement scripts (compare_small_data.py, compare_conditional.py) share: running
a project command with its output appended to a log, and writing the results table."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, log_path):
    """Run cmd from the repository root, appending the command line and its output to log_path;
    CalledProcessError when it fails."""
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def write_table(out_dir: str, text: str) -> None:
    """OUT/table.md, and the table on stdout."""
    with open(os.path.join(out_dir, "table.md"), "w") as fh:
        fh.write(text + "\n")
    print(text)
