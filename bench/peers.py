"""The servers users would pick instead, installed into the scratch folder
and started on loopback with their caches off, for `--peers`.

- Nginx's image_filter (Debian's libnginx-mod-http-image-filter, which
  scripts/install-deps adds): loaded with load_module in an Nginx of its
  own. It keeps the input's format, so it only does JPEG→JPEG and
  PNG→PNG.
- thumbor, from PyPI, in a virtualenv, one process per worker, its
  result storage and original storage off, AVIF through
  pillow-avif-plugin.
- ipx, from npm (sharp, with the libvips build sharp ships), one Node
  process as its command starts it; it keeps no result cache.

Every peer reads the same hard-linked originals, so each request is a
new path for them too.
"""

import os
import shutil
import signal
import subprocess

from stack import nginx_binary, stop_nginx
from util import free_port, process_tree, scratch_dir, wait_listening

THUMBOR = ["thumbor==7.8.0", "pillow-avif-plugin==1.6.0"]
IPX = "ipx@3.1.1"
IMAGE_FILTER = "/usr/lib/nginx/modules/ngx_http_image_filter_module.so"

# Quality per output format, as imgworker's defaults.
QUALITY = {"jpeg": 80, "webp": 80, "avif": 55, "png": None}


def install(scratch, log):
    """Installs what is missing under scratch/peers; returns their dir."""
    home = os.path.join(scratch, "peers")
    os.makedirs(home, exist_ok=True)
    venv = os.path.join(home, "thumbor")
    if not os.path.exists(os.path.join(venv, "bin/thumbor")):
        log("installing thumbor into " + venv)
        subprocess.run(["python3", "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin/pip"), "install", "-q",
                        "--disable-pip-version-check"] + THUMBOR,
                       check=True)
    ipx = os.path.join(home, "ipx")
    if not os.path.exists(os.path.join(ipx, "node_modules/.bin/ipx")):
        log("installing ipx into " + ipx)
        os.makedirs(ipx, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit",
                        "--no-fund", "--prefix", ipx, IPX], check=True)
    return home


class Peer:
    """A server started in a session of its own, so that stopping it
    stops every process it forked."""
    name = ""
    process = None

    def spawn(self, argv):
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def pids(self):
        return process_tree(self.process.pid) if self.process else []

    def stop(self):
        if self.process is None:
            return
        group = self.process.pid
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # Forked children may linger over a graceful exit (thumbor's do),
        # holding the port and the processor: end the whole session.
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process = None

    def restart(self):
        self.stop()
        self.start()


class ImageFilter(Peer):
    name = "image_filter"

    def __init__(self, run_dir, source_root, workers):
        self.dir = os.path.join(run_dir, "image-filter")
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        self.port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_IMAGE_FILTER % dict(
            module=IMAGE_FILTER, run=os.path.join(self.dir, "run"),
            workers=workers, user=user, port=self.port, root=source_root)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        subprocess.run([nginx_binary(), "-p", self.dir, "-c", self.conf,
                        "-e", os.path.join(self.dir, "run/error.log")],
                       check=True)
        wait_listening(self.port)

    def stop(self):
        stop_nginx(os.path.join(self.dir, "run/nginx.pid"), signal.SIGTERM)

    def pids(self):
        try:
            with open(os.path.join(self.dir, "run/nginx.pid")) as f:
                return process_tree(int(f.read()))
        except (OSError, ValueError):
            return []

    def url(self, key, fmt):
        source = "png" if key.startswith("png") else "jpeg"
        if fmt != source:
            return None
        return ("http://127.0.0.1:%d" % self.port, "/if/%s/" % key)


NGINX_IMAGE_FILTER = """\
# The benchmark's image_filter peer: resizes on every request.
load_module         %(module)s;
worker_processes    %(workers)d;
pid                 %(run)s/nginx.pid;
error_log           %(run)s/error.log error;
%(user)s
events { worker_connections 1024; }
http {
    access_log              off;
    client_body_temp_path   %(run)s/body;
    proxy_temp_path         %(run)s/proxy;
    fastcgi_temp_path       %(run)s/fastcgi;
    uwsgi_temp_path         %(run)s/uwsgi;
    scgi_temp_path          %(run)s/scgi;
    keepalive_requests      10000;
    server {
        listen 127.0.0.1:%(port)d;
        location /if/ {
            alias                       %(root)s/;
            image_filter                resize 300 -;
            image_filter_jpeg_quality   80;
            image_filter_buffer         64M;
        }
    }
}
"""


class Thumbor(Peer):
    name = "thumbor"

    def __init__(self, home, run_dir, source_root, workers):
        self.bin = os.path.join(home, "thumbor/bin/thumbor")
        self.workers = workers
        self.port = free_port()
        self.conf = os.path.join(run_dir, "thumbor.conf")
        with open(self.conf, "w") as f:
            f.write(THUMBOR_CONF % source_root)

    def start(self):
        self.spawn([self.bin, "-p", str(self.port), "-i", "127.0.0.1",
                    "-c", self.conf, "-l", "error", "--processes",
                    str(self.workers)])
        wait_listening(self.port, 60)

    def url(self, key, fmt):
        filters = "format(%s)" % fmt
        if QUALITY[fmt]:
            filters += ":quality(%d)" % QUALITY[fmt]
        return ("http://127.0.0.1:%d" % self.port,
                "/unsafe/300x0/filters:%s/%s/" % (filters, key))


THUMBOR_CONF = """\
# The benchmark's thumbor peer: files from the source root, nothing kept.
LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = %r
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = None
ALLOW_UNSAFE_URL = True
QUALITY = 80
RESPECT_ORIENTATION = True
MAX_AGE = 0
"""


class Ipx(Peer):
    name = "ipx"

    def __init__(self, home, source_root):
        self.bin = os.path.join(home, "ipx/node_modules/.bin/ipx")
        self.root = source_root
        self.port = free_port()

    def start(self):
        self.spawn([self.bin, "serve", "--dir", self.root, "--port",
                    str(self.port), "--host", "127.0.0.1"])
        wait_listening(self.port, 60)

    def url(self, key, fmt):
        modifiers = "w_300&f_%s" % fmt
        if QUALITY[fmt]:
            modifiers += "&q_%d" % QUALITY[fmt]
        return ("http://127.0.0.1:%d" % self.port, "/%s/%s/" % (modifiers,
                                                                key))


def available():
    """Why peers cannot run here, or None when they can."""
    missing = [tool for tool in ("python3", "npm") if not shutil.which(tool)]
    if not os.path.exists(IMAGE_FILTER):
        missing.append("libnginx-mod-http-image-filter")
    return ", ".join(missing) or None


if __name__ == "__main__":
    # scripts/bench installs the peers this way while it builds.
    install(scratch_dir(), print)
