"""imgworker and its Nginx, started on loopback for the benchmark.

The Nginx side is the project's own `nginx/example.conf`, filled in the
way scripts/demo fills it, with one location added beside imgworker's:
/static/ serves a copy of a derivative as a plain file, so the hit path
and a static file are measured in the same server. imgworker runs with
its default configuration; only the paths and the number of workers are
given on the command line.
"""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

from util import free_port, process_tree, wait_for, wait_listening

STATIC_LOCATION = """
        # Added by the benchmark: the same bytes as a plain file, and with
        # the open file cache the snippet gives hits.
        location /static/ {
            root            %s;
            types           { image/webp webp; image/jpeg jpg; }
        }
        location /static-cached/ {
            root            %s;
            types           { image/webp webp; image/jpeg jpg; }
            open_file_cache           max=256 inactive=30s;
            open_file_cache_valid     1s;
        }
"""


class Stack:
    """Nginx on a loopback port in front of an imgworker pool."""

    def __init__(self, project, run_dir, source_root):
        self.project = project
        self.dir = os.path.join(run_dir, "stack")
        self.source_root = source_root
        self.cache_root = os.path.join(self.dir, "cache")
        self.static_root = os.path.join(self.dir, "static")
        self.socket = os.path.join(self.dir, "imgworker.sock")
        self.log_path = os.path.join(self.dir, "imgworker.log")
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.workers = 0
        self.pool = None
        for d in (self.cache_root, self.static_root,
                  os.path.join(self.dir, "run")):
            os.makedirs(d, exist_ok=True)

    def start(self, workers):
        self.start_pool(workers)
        self.start_nginx()

    def start_nginx(self):
        nginx_dir = os.path.join(self.project, "nginx")
        run = os.path.join(self.dir, "run")
        with open(os.path.join(nginx_dir, "example.conf")) as f:
            conf = f.read()
        user = "user root;" if os.geteuid() == 0 else ""
        for key, value in (("RUN_DIR", run), ("NGINX_DIR", nginx_dir),
                           ("PORT", str(self.port)),
                           ("CACHE_ROOT", self.cache_root),
                           ("SOCKET", self.socket), ("USER_LINE", user)):
            conf = conf.replace("@%s@" % key, value)
        # The static location goes right after imgworker's include.
        conf = re.sub(r"(include\s+\S+/imgworker\.conf;\n)",
                      lambda m: m.group(1) + STATIC_LOCATION %
                      (self.static_root, self.static_root), conf, count=1)
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        subprocess.run([nginx_binary(), "-p", self.dir, "-c", path, "-e",
                        os.path.join(run, "nginx-error.log")], check=True)
        wait_listening(self.port)

    def start_pool(self, workers, config=None):
        """Starts imgworker with `workers` workers; waits until all are up.
        `config`, a file, changes settings beyond the defaults."""
        binary = os.path.join(self.project, "target/release/imgworker")
        extra = ["--config", config] if config else []
        with open(self.log_path, "a") as log:
            self.log_offset = log.tell()
            self.pool = subprocess.Popen(
                [binary, "serve"] + extra + [
                    "--socket", self.socket, "--source-root",
                    self.source_root, "--cache-root", self.cache_root,
                    "--workers", str(workers)],
                stdout=subprocess.DEVNULL, stderr=log)
        self.workers = workers
        wait_for(lambda: len(self.worker_pids()) == workers,
                 "%d imgworker workers to start" % workers, 30)

    def stop_pool(self):
        if self.pool is not None:
            self.pool.send_signal(signal.SIGTERM)
            self.pool.wait(timeout=60)
            self.pool = None

    def restart_pool(self, workers, config=None):
        self.stop_pool()
        self.start_pool(workers, config)

    def stop(self):
        self.stop_pool()
        stop_nginx(os.path.join(self.dir, "run/nginx.pid"))

    def pids(self):
        return process_tree(self.pool.pid) if self.pool else []

    def nginx_pids(self):
        with open(os.path.join(self.dir, "run/nginx.pid")) as f:
            return process_tree(int(f.read()))

    def log_text(self):
        """What this pool has logged since it started."""
        with open(self.log_path) as f:
            f.seek(self.log_offset)
            return f.read()

    def worker_pids(self):
        alive = []
        for line in self.log_text().splitlines():
            pid = re.search(r" pid=(\d+)", line)
            if not pid:
                continue
            if " worker started " in line:
                alive.append(int(pid.group(1)))
            elif " worker exited " in line or " worker killed " in line:
                alive = [p for p in alive if p != int(pid.group(1))]
        return alive

    def misses_served(self):
        return self.log_text().count(" request status=200 ")

    def clear_cache(self):
        """Empties the cache tree, so the next request for any URL misses."""
        img = os.path.join(self.cache_root, "img")
        for _ in range(50):
            shutil.rmtree(img, ignore_errors=True)
            if not os.path.exists(img):
                return
            time.sleep(0.1)  # a worker is still writing into it
        raise RuntimeError("cannot empty " + img)

    def get(self, path, accept=None):
        """One request; returns (status, X-Imgworker, body)."""
        req = urllib.request.Request(self.base + path)
        if accept:
            req.add_header("Accept", accept)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.headers.get("X-Imgworker"), r.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers.get("X-Imgworker"), err.read()


def nginx_binary():
    for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx",
                 "/usr/bin/nginx"):
        if os.path.exists(path):
            return path
    return shutil.which("nginx") or "nginx"


def stop_nginx(pid_file, how=signal.SIGQUIT):
    """Stops the Nginx of `pid_file`: gracefully by default, at once with
    SIGTERM."""
    try:
        with open(pid_file) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, how)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(pid_file):
        time.sleep(0.05)
