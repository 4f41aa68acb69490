"""7. What the numbers were measured on: cores, processor, and the
versions of Nginx, libvips and wrk, for the table's first line."""

import datetime
import os
import re
import subprocess


def output(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True)
        return out.stdout + out.stderr
    except OSError:
        return ""


def describe():
    model = "unknown processor"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nginx = re.search(r"nginx/(\S+)", output(["nginx", "-v"]) or
                      output(["/usr/sbin/nginx", "-v"]))
    vips = re.search(r"vips-(\S+)", output(["vips", "--version"]))
    wrk = re.search(r"^wrk (\S+)", output(["wrk", "-v"]), re.M)
    return {
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "model": model,
        "nginx": nginx.group(1) if nginx else "?",
        "libvips": vips.group(1) if vips else "?",
        "wrk": wrk.group(1) if wrk else "?",
    }


def line(m):
    return ("%s: %d cores, %s; nginx %s, libvips %s, wrk %s"
            % (m["date"], m["cores"], m["model"], m["nginx"], m["libvips"],
               m["wrk"]))
