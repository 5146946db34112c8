"""Open a page in headless Chromium over the DevTools protocol: console errors, images, screenshot.

A tiny synchronous client (``websockets.sync``, already installed with Prefect): start Debian's
``chromium`` headless on a free debugging port, open a page, wait for its load event, collect
every console error and uncaught exception, evaluate a script (image sizes), and capture a full-
page screenshot. The browser runs with networking, sync, component updates and first-run off,
and is stopped by its process id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--disable-default-apps", "--hide-scrollbars", "--remote-debugging-port=0"]

IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight})))"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageCheck:
    console_errors: list[str] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    text: str = ""


class Browser:
    """One headless Chromium process; use as a context manager."""

    def __init__(self, binary: str, *, timeout_s: float = 60.0) -> None:
        self.binary, self.timeout_s = binary, timeout_s
        self.profile = tempfile.mkdtemp(prefix="vertfrac-chromium-")
        self.proc: subprocess.Popen | None = None
        self._id = 0

    def __enter__(self) -> Browser:
        self.proc = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = Path(self.profile) / "DevToolsActivePort"
        end = time.monotonic() + self.timeout_s
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"chromium did not start (exit {self.proc.poll()})")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def _page_ws(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def open(self, path: Path, screenshot: Path | None = None, width: int = 1200,
             max_height: int = 16000) -> PageCheck:
        """Load ``path``; return console errors, images and text; write a full-page PNG."""
        from websockets.sync.client import connect

        check = PageCheck()
        with connect(self._page_ws(), max_size=None, open_timeout=self.timeout_s) as ws:
            def call(method: str, params: dict | None = None) -> dict:
                self._id += 1
                ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
                end = time.monotonic() + self.timeout_s
                while True:
                    msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
                    if msg.get("id") == self._id:
                        if "error" in msg:
                            raise RuntimeError(f"{method}: {msg['error']}")
                        return msg.get("result", {})
                    self._event(msg, check)

            for domain in ("Page", "Runtime", "Log"):
                call(f"{domain}.enable")
            call("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False})
            call("Page.navigate", {"url": Path(path).resolve().as_uri()})
            end = time.monotonic() + self.timeout_s
            while True:
                msg = json.loads(ws.recv(timeout=max(0.1, end - time.monotonic())))
                if msg.get("method") == "Page.loadEventFired":
                    break
                self._event(msg, check)
            time.sleep(0.3)  # let scripts run after load
            value = call("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True})
            check.images = json.loads(value["result"]["value"])
            check.title = call("Runtime.evaluate", {"expression": "document.title", "returnByValue": True})["result"]["value"]
            check.text = call("Runtime.evaluate", {"expression": "document.body.innerText",
                                                   "returnByValue": True})["result"]["value"]
            if screenshot is not None:
                metrics = call("Page.getLayoutMetrics")
                size = metrics.get("cssContentSize") or metrics["contentSize"]
                height = min(int(size["height"]), max_height)
                shot = call("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
            # drain events that arrived meanwhile
            with contextlib.suppress(TimeoutError):
                while True:
                    self._event(json.loads(ws.recv(timeout=0.2)), check)
        return check

    @staticmethod
    def _event(msg: dict, check: PageCheck) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            check.console_errors.append("Uncaught " + str(d.get("exception", {}).get("description") or d.get("text")))
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            check.console_errors.append("console." + p["type"] + ": " + " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            check.console_errors.append("log: " + p["entry"].get("text", ""))
