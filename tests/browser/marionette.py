"""A minimal client of Firefox's Marionette protocol (the one geckodriver speaks to Firefox), so
the UI can be tried in Debian's firefox-esr without geckodriver, which Debian does not package and
PyPI's helpers download from GitHub. Wire format: each message is `LENGTH:JSON`; a command is
`[0, id, name, params]` and its answer `[1, id, error, result]`.
"""

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

# No network calls of its own (updates, telemetry, remote settings), and media may play without a
# click, as Chromium's --autoplay-policy flag allows in test_ui.py.
PREFS = {
    "marionette.port": 0,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "app.update.enabled": False,
    "app.update.auto": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
    "network.connectivity-service.enabled": False,
    "network.captive-portal-service.enabled": False,
    "extensions.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
}


class MarionetteError(Exception):
    pass


class Firefox:
    """A headless firefox-esr with its own profile, and a Marionette session to drive it."""

    def __init__(self, binary=None, width=1280, height=900):
        self.profile = Path(tempfile.mkdtemp(prefix="vidswarm-firefox-"))
        prefs = dict(PREFS)
        (self.profile / "user.js").write_text("".join(
            f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
        binary = binary or shutil.which("firefox-esr") or shutil.which("firefox")
        if not binary:
            raise MarionetteError("no firefox-esr or firefox on PATH")
        self.proc = subprocess.Popen(
            [binary, "--headless", "--marionette", "--no-remote", "--profile", str(self.profile),
             "--width", str(width), "--height", str(height), "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sock = self._connect(time.monotonic() + 60)
        self.next_id = 0
        self.version = self.command("WebDriver:NewSession", {
            "capabilities": {"alwaysMatch": {"acceptInsecureCerts": True}}})[
                "capabilities"]["browserVersion"]

    def _connect(self, deadline):
        # With marionette.port 0, Firefox picks a free port and writes it to the profile.
        port_file = self.profile / "MarionetteActivePort"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise MarionetteError(f"firefox exited with {self.proc.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                try:
                    sock = socket.create_connection(
                        ("127.0.0.1", int(port_file.read_text())), timeout=120)
                    self.buf = b""
                    self._read(sock)  # the server's hello
                    return sock
                except (ConnectionRefusedError, ValueError):
                    pass
            time.sleep(0.1)
        raise MarionetteError("Marionette did not come up within 60 s")

    def _read(self, sock):
        while b":" not in self.buf:
            self.buf += self._recv(sock)
        length, rest = self.buf.split(b":", 1)
        while len(rest) < int(length):
            rest += self._recv(sock)
        self.buf = rest[int(length):]
        return json.loads(rest[:int(length)])

    @staticmethod
    def _recv(sock):
        data = sock.recv(1 << 16)
        if not data:
            raise MarionetteError("Marionette closed the connection")
        return data

    def command(self, name, params=None):
        self.next_id += 1
        body = json.dumps([0, self.next_id, name, params or {}]).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body)
        while True:
            kind, msg_id, error, result = self._read(self.sock)
            if kind == 1 and msg_id == self.next_id:
                break
        if error:
            raise MarionetteError(f"{name}: {error.get('error')}: {error.get('message')}")
        return result

    def get(self, url):
        self.command("WebDriver:Navigate", {"url": url})

    def execute_script(self, script, *args):
        return self.command("WebDriver:ExecuteScript",
                            {"script": script, "args": list(args)}).get("value")

    def save_screenshot(self, path):
        png = self.command("WebDriver:TakeScreenshot", {"full": False})["value"]
        Path(path).write_bytes(base64.b64decode(png))

    def quit(self):
        try:
            self.command("Marionette:Quit", {"flags": ["eForceQuit"]})
        except (MarionetteError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
