"""The README stays a short guide for users, its links lead somewhere, and its plugin
walk-through works when followed literally from a folder of one's own."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
WALK_THROUGH = "## Adding a plugin: your first loss"
STUDY_FILE = "## The study file"

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # a link or an image: its target
FENCE = re.compile(r"^```[^\n]*\n.*?^```", re.DOTALL | re.MULTILINE)
# a file name in bold backticks, then (on the next lines) the fenced block that is the file
NAMED_BLOCK = re.compile(r"\*\*`([\w.\-]+)`\*\*[^\n]*\n\s*\n?```\w*\n(.*?)^```",
                         re.DOTALL | re.MULTILINE)


def section(text: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same level."""
    start = text.index(heading + "\n")
    level = heading.split(" ")[0]
    nxt = re.search(rf"^{level} ", text[start + len(heading):], re.MULTILINE)
    return text[start:start + len(heading) + nxt.start()] if nxt else text[start:]


def test_the_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move depth into docs/"


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes for a Markdown page."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = 0
        while (slug if n == 0 else f"{slug}-{n}") in found:
            n += 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def test_every_relative_link_points_to_an_existing_file():
    pages = [README, *sorted(DOCS.glob("*.md"))]
    broken = []
    for page in pages:
        text = FENCE.sub("", page.read_text())  # links inside code blocks are code
        for match in LINK.finditer(text):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.\-]*:", target):
                continue  # http:, mailto:, ...
            path, _, anchor = target.partition("#")
            file = (page.parent / path) if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_docs_index_lists_every_page():
    index = (DOCS / "README.md").read_text()
    missing = [p.name for p in sorted(DOCS.glob("*.md"))
               if p.name != "README.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/README.md does not link {missing}"


def test_the_readme_study_file_example_validates():
    from harness.config import parse_study
    from harness.resolve import resolve

    blocks = re.findall(r"^```yaml\n(.*?)^```", section(README.read_text(), STUDY_FILE),
                        re.DOTALL | re.MULTILINE)
    assert blocks, f"no yaml block under {STUDY_FILE!r}"
    spec = parse_study(yaml.safe_load(blocks[0]), source="README")
    plans = resolve(spec, source="README")
    assert {p.base.variant for p in plans} == {v.name for v in spec.variants}


def walk_through() -> tuple[dict[str, str], list[list[str]]]:
    """The walk-through's files (name -> content) and its ``harness`` commands."""
    text = section(README.read_text(), WALK_THROUGH)
    steps = text.split("**Shipping plugins as a package.**")[0]  # that part needs an install
    files = {name: body for name, body in NAMED_BLOCK.findall(steps)}
    commands = [shlex.split(line.split(" #")[0])
                for block in re.findall(r"^```bash\n(.*?)^```", steps, re.DOTALL | re.MULTILINE)
                for line in block.splitlines() if line.startswith("harness ")]
    return files, commands


def test_the_plugin_walk_through_runs_from_a_folder_of_ones_own(tmp_path):
    files, commands = walk_through()
    assert set(files) == {"my_losses.py", "study.yaml"}, sorted(files)
    assert commands == [["harness", "study", "study.yaml"]], commands
    study = yaml.safe_load(files["study.yaml"])
    new_losses = [v["name"] for v in study["variants"]
                  if (v["loss"] if isinstance(v["loss"], str) else v["loss"]["name"]) == "my_hinge"]
    assert new_losses, "the walk-through's study uses no variant with the new loss"

    folder = tmp_path / "my-gans"  # outside the checkout: nothing of it is importable here
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_text(body)
    script = shutil.which("harness") or str(Path(sys.executable).parent / "harness")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run([script, *commands[0][1:]], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(study["name"])
    runs = client.search_runs([exp.experiment_id], "tags.loss = 'my_hinge'")
    expected = len(new_losses) * (study["search"]["trials"] + study["seeds"])
    assert len(runs) == expected, out
    for run in runs:
        assert run.info.status == "FINISHED", (run.data.tags, out)
        assert run.data.tags.get("status") not in ("failed", "stopped"), (run.data.tags, out)
        assert run.data.tags["variant"] in new_losses
    assert (folder / "runs" / "reports").is_dir(), out  # the report the README promises
