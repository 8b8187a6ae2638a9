"""Open an HTML page in a real headless Chromium: console errors, broken images, a screenshot.

A helper for the browser tests (not a test file). ``python -m tests.browser REPORT_HTML OUT_PNG``
checks a report and writes its screenshot (for the README).

How :func:`check_page` works: the page is copied, next to the original so relative image
paths resolve the same way, with a ``<script>`` first in ``<head>`` that records
``window.onerror``, unhandled promise rejections, ``console.error`` calls and resources that
failed to load, and on ``load`` writes a JSON summary (with every ``<img>``'s ``complete`` and
``naturalWidth``) into ``<pre id="__harness_check__">``. Chromium dumps the DOM of that copy
(``--dump-dom``) and its page console messages to stderr (``--enable-logging=stderr``); both
are read back. The screenshot is taken of the original, un-injected file.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

#: binaries looked for on PATH, in order (``HARNESS_CHROMIUM`` overrides)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: tried in order; plain ``--headless`` works on Debian's Chromium 156 (where it is the new
#: headless mode) and on older builds; ``--headless=new`` is the fallback
HEADLESS_FLAGS = ("--headless", "--headless=new")
COMMON_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--mute-audio")
MARKER_ID = "__harness_check__"
APT_UPDATE_TIMEOUT = 300
APT_INSTALL_TIMEOUT = 900

_INJECTED = """<script>/* injected by tests/browser.py */
(function () {
  var errors = [], logs = [], resources = [];
  function text(args) {
    return Array.prototype.map.call(args, function (a) {
      if (a instanceof Error) return a.name + ": " + a.message;
      if (typeof a === "object") { try { return JSON.stringify(a); } catch (e) {} }
      return String(a);
    }).join(" ");
  }
  window.onerror = function (msg, src, line, col, err) {
    errors.push("onerror: " + msg + " (" + src + ":" + line + ")");
  };
  window.addEventListener("unhandledrejection", function (ev) {
    var r = ev.reason;
    errors.push("unhandledrejection: " + (r && r.message ? r.message : String(r)));
  });
  window.addEventListener("error", function (ev) {
    var t = ev.target;
    if (t && t !== window && t.tagName) {
      var src = t.currentSrc || t.src || t.href || "";
      resources.push("<" + t.tagName.toLowerCase() + "> failed to load: " + src.slice(0, 200));
    }
  }, true);
  var original = {};
  ["error", "warn", "log", "info", "debug"].forEach(function (level) {
    original[level] = console[level];
    console[level] = function () {
      (level === "error" ? errors : logs).push(
        (level === "error" ? "console.error: " : "") + text(arguments));
      return original[level].apply(console, arguments);
    };
  });
  window.addEventListener("load", function () {
    var imgs = Array.prototype.map.call(document.images, function (im) {
      var src = im.getAttribute("src") || "";
      return {src: src.slice(0, 120), alt: im.alt, complete: im.complete,
              naturalWidth: im.naturalWidth, naturalHeight: im.naturalHeight};
    });
    var pre = document.createElement("pre");
    pre.id = "%(marker)s";
    pre.textContent = JSON.stringify({title: document.title, images: imgs, errors: errors,
                                      logs: logs, resources: resources});
    document.body.appendChild(pre);
  });
})();
</script>
""".replace("%(marker)s", MARKER_ID)

# '[pid:tid:date:INFO:CONSOLE:12] "message", source: file:///x.html (12)' (older builds:
# 'INFO:CONSOLE(12)'); the message itself may hold quotes
_CONSOLE_LINE = re.compile(r':CONSOLE[:(]\d*\)?\]\s*"(?P<msg>.*)", source: (?P<src>.*)$')


@dataclass
class PageReport:
    """What Chromium saw when it loaded a page."""

    images: int  #: <img> elements in the loaded DOM
    broken_images: list[str]  #: src (or alt) of each <img> with naturalWidth == 0 after load
    console_errors: list[str]  #: uncaught errors, rejections, console.error, stderr CONSOLE
    title: str
    resource_errors: list[str] = field(default_factory=list)  #: elements that failed to load
    console_messages: list[str] = field(default_factory=list)  #: every page CONSOLE line
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not (self.broken_images or self.console_errors or self.resource_errors)


def _which_chromium() -> str | None:
    override = os.environ.get("HARNESS_CHROMIUM")
    if override:
        return shutil.which(override)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def find_or_install_chromium(tried: list[str] | None = None) -> str | None:
    """The path of a Chromium binary, installing Debian's ``chromium`` when there is none (as
    root with apt-get). None when it still cannot be had; ``tried`` collects what was tried
    (for the skip message)."""
    tried = tried if tried is not None else []
    path = _which_chromium()
    tried.append(f"looked for {', '.join(CHROMIUM_NAMES)} on PATH: "
                 + (f"found {path}" if path else "none"))
    if path:
        return path
    apt = shutil.which("apt-get")
    if apt is None:
        tried.append("no apt-get to install chromium with")
        return None
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        tried.append("not root, so did not run apt-get install chromium")
        return None
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = [([apt, "update"], APT_UPDATE_TIMEOUT),
             ([apt, "install", "-y", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=120", "chromium"], APT_INSTALL_TIMEOUT)]
    for cmd, timeout in steps:
        label = " ".join(["apt-get"] + cmd[1:])
        try:
            res = subprocess.run(cmd, check=False, capture_output=True, text=True,
                                 timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            tried.append(f"`{label}` timed out after {timeout}s")
            return None
        except OSError as err:
            tried.append(f"`{label}` could not run: {err}")
            return None
        if res.returncode != 0:
            tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
            tried.append(f"`{label}` failed (exit {res.returncode}): {tail}")
            if cmd[1] == "install":
                return None
        else:
            tried.append(f"`{label}` ok")
    path = _which_chromium()
    tried.append(f"after installing: {path or 'still no chromium on PATH'}")
    return path


def chromium_version(chromium: str) -> str:
    res = subprocess.run([chromium, "--version"], check=False, capture_output=True, text=True,
                         timeout=60)
    return res.stdout.strip()


def _inject(page: bytes) -> bytes:
    """``page`` with the recording script first in <head> (after a leading <meta charset>, so
    that stays in the first 1024 bytes)."""
    script = _INJECTED.encode("utf-8")
    m = re.search(rb"<head\b[^>]*>(\s*<meta\s+charset=[^>]*>)?", page, re.IGNORECASE)
    if m is None:
        m = re.search(rb"<html\b[^>]*>", page, re.IGNORECASE)
        script = b"<head>" + script + b"</head>"
    at = m.end() if m else 0
    return page[:at] + script + page[at:]


def _run_chromium(chromium: str, headless: str, args: list[str], timeout: float,
                  user_data: Path) -> subprocess.CompletedProcess:
    cmd = [chromium, headless, *COMMON_FLAGS, f"--user-data-dir={user_data}", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                          errors="replace")


def _console_lines(stderr: str) -> list[tuple[str, str]]:
    """(message, raw line) for the page's console messages in Chromium's stderr log; the rest
    (dbus, GPU, sandbox warnings, the launcher script) is Chromium's own noise."""
    out = []
    for line in stderr.splitlines():
        m = _CONSOLE_LINE.search(line)
        if m:
            out.append((m.group("msg"), line.strip()))
        elif "Uncaught" in line:
            out.append((line.strip(), line.strip()))
    return out


def _summary(dom: str) -> dict | None:
    m = re.search(rf'<pre id="{MARKER_ID}">(.*?)</pre>', dom, re.DOTALL)
    return json.loads(html_lib.unescape(m.group(1))) if m else None


def _checked_copy(html_path: Path, tmp: Path) -> Path:
    """The injected copy, in the original's folder (relative paths resolve the same); in
    ``tmp`` with a <base href> to that folder when the folder is not writable."""
    page = _inject(html_path.read_bytes())
    here = html_path.parent / f".{html_path.stem}.harness-check-{uuid.uuid4().hex[:8]}.html"
    try:
        here.write_bytes(page)
        return here
    except OSError:
        base = f'<base href="{html_path.parent.as_uri()}/">'.encode()
        page = re.sub(rb"(<head\b[^>]*>)", lambda m: m.group(1) + base, page, count=1,
                      flags=re.IGNORECASE)
        copy = tmp / html_path.name
        copy.write_bytes(page)
        return copy


def check_page(chromium: str, html_path, screenshot_path, timeout: float = 60) -> PageReport:
    """Load ``html_path`` in headless Chromium and report its images, console errors and
    title; write a 1280x2400 screenshot of the original page to ``screenshot_path``."""
    html_path = Path(html_path).resolve()
    screenshot_path = Path(screenshot_path).resolve()
    screenshot_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="harness-chromium-") as tmpdir:
        tmp = Path(tmpdir)
        copy = _checked_copy(html_path, tmp)
        try:
            failures = []
            for headless in HEADLESS_FLAGS:
                res = _run_chromium(
                    chromium, headless,
                    ["--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0",
                     "--dump-dom", copy.as_uri()], timeout, tmp / f"profile{len(failures)}")
                summary = _summary(res.stdout)
                if summary is not None:
                    break
                failures.append(f"{headless}: exit {res.returncode}, stderr tail: "
                                + " | ".join(res.stderr.strip().splitlines()[-5:]))
            else:
                raise RuntimeError("Chromium did not run the check script on "
                                   f"{html_path}: " + "; ".join(failures))
        finally:
            if copy.parent == html_path.parent:
                copy.unlink(missing_ok=True)

        errors = list(summary["errors"])
        logs = set(summary["logs"])
        messages = []
        for msg, line in _console_lines(res.stderr):
            messages.append(line)
            if msg in logs:
                continue  # console.log / info / warn / debug: not an error
            if any(msg in e or e.endswith(msg) for e in errors):
                continue  # already recorded by the script (uncaught error, console.error)
            errors.append(f"console: {msg}")

        shot = _run_chromium(
            chromium, headless,
            ["--virtual-time-budget=10000", f"--screenshot={screenshot_path}",
             "--window-size=1280,2400", "--hide-scrollbars", html_path.as_uri()],
            timeout, tmp / "profile-shot")
        if not screenshot_path.is_file():
            raise RuntimeError(f"Chromium wrote no screenshot to {screenshot_path} (exit "
                               f"{shot.returncode}): " + " | ".join(
                                   shot.stderr.strip().splitlines()[-5:]))

    images = summary["images"]
    broken = [im["src"] or im["alt"] or "?" for im in images
              if not im["complete"] or im["naturalWidth"] == 0]
    return PageReport(images=len(images), broken_images=broken, console_errors=errors,
                      title=summary["title"], resource_errors=list(summary["resources"]),
                      console_messages=messages, screenshot=screenshot_path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m tests.browser REPORT_HTML OUT_PNG", file=sys.stderr)
        return 2
    tried: list[str] = []
    chromium = find_or_install_chromium(tried)
    if chromium is None:
        print("no chromium: " + "; ".join(tried), file=sys.stderr)
        return 1
    report = check_page(chromium, argv[0], argv[1])
    print(f"{chromium_version(chromium)}: {report.title!r}, {report.images} images, "
          f"broken {report.broken_images}, console errors {report.console_errors}, "
          f"resource errors {report.resource_errors}")
    print(f"screenshot: {report.screenshot}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
