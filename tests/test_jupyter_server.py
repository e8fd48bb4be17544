"""`make lab`: JupyterLab on notebooks/ with the project's kernel, started and stopped cleanly.

The test runs the command `make lab` runs, headless on 127.0.0.1 with a token, and talks to it as
JupyterLab does: it lists notebooks/ over the REST API, starts a kernel, runs `import vaelib` in it
over the kernel's websocket, deletes the kernel, shuts the server down, and checks that no process
it started is left.
"""

import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psutil
import requests
import websocket

import vaelib

ROOT = Path(__file__).resolve().parents[1]


def lab_command() -> list[str]:
    dry_run = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return shlex.split(next(line for line in dry_run.splitlines() if "jupyter lab" in line))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def execute(url: str, code: str, timeout: float = 120) -> str:
    """Run code in a kernel over its websocket, as JupyterLab does; return what it printed."""
    ws = websocket.create_connection(url, timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                       "date": datetime.now(timezone.utc).isoformat(), "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        printed, replied, idle = "", False, False
        while not (replied and idle):
            msg = json.loads(ws.recv())
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            assert kind != "error", "\n".join(content["traceback"])
            printed += content["text"] if kind == "stream" else ""
            replied |= kind == "execute_reply" and content["status"] == "ok"
            idle |= kind == "status" and content["execution_state"] == "idle"
        return printed
    finally:
        ws.close()


def test_make_lab_serves_notebooks_and_a_kernel_that_imports_vaelib_then_stops_cleanly(tmp_path):
    command = lab_command()
    assert command[:2] == [".venv/bin/jupyter", "lab"] and "--notebook-dir=notebooks" in command
    port, token = free_port(), secrets.token_hex(16)
    runtime = tmp_path / "runtime"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "IPYTHONDIR": str(tmp_path / "ipython")}
    log = open(tmp_path / "server.log", "w")
    headless = ["--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}"] + ["--allow-root"] * (os.geteuid() == 0 and "--allow-root" not in command)  # CI runs as root
    server = subprocess.Popen(command + headless,
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    started = [psutil.Process(server.pid)]  # every process the server starts is added, to check none is left
    api = f"http://127.0.0.1:{port}/api"
    auth = {"Authorization": f"token {token}"}
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"the server exited: {(tmp_path / 'server.log').read_text()}"
            assert time.monotonic() < deadline, "the server did not answer within 90 s"
            try:
                if requests.get(f"{api}/status", headers=auth, timeout=5).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        assert requests.get(f"{api}/contents/", timeout=5).status_code == 403  # no token, no access

        listing = requests.get(f"{api}/contents/", headers=auth, timeout=10).json()["content"]
        listed = {e["name"] for e in listing if e["type"] == "notebook" and e["name"].endswith(".ipynb")}
        on_disk = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert on_disk and listed == on_disk

        kernel = requests.post(f"{api}/kernels", headers=auth, json={"name": "python3"}, timeout=30)
        assert kernel.status_code == 201
        kernel_id = kernel.json()["id"]
        printed = execute(f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels?token={token}",
                          "import sys, vaelib\nprint(vaelib.__version__, sys.prefix)")
        assert printed.split() == [vaelib.__version__, sys.prefix]  # this project's venv, with vaelib
        kernels = psutil.Process(server.pid).children(recursive=True)
        assert kernels, "the kernel is not a child of the server"
        started += kernels

        assert requests.delete(f"{api}/kernels/{kernel_id}", headers=auth, timeout=30).status_code == 204
        assert requests.get(f"{api}/kernels", headers=auth, timeout=10).json() == []
        assert requests.post(f"{api}/shutdown", headers=auth, timeout=30).ok
        assert server.wait(timeout=60) == 0
    finally:
        _, alive = psutil.wait_procs(started, timeout=10)
        for process in alive:  # only processes this test started, so that a failure leaves nothing behind
            process.kill()
        log.close()
    assert not alive, f"processes left running: {alive}"
    assert not list(runtime.glob("kernel-*.json")) and not list(runtime.glob("jpserver-*")), (
        "the server left connection or server files behind: it did not shut down cleanly")
