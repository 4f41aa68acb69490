"""The originals the benchmark renders, and the source root it serves.

Each original is copied once into the run's source root and then hard
linked many times (0.jpg, 1.jpg, …) beside itself, so that every request
can name a path never asked for before while the work stays identical:
the same bytes, the same inode, the same page cache.
"""

import os
import shutil
import subprocess

# Photos of about 1, 6, 12 and 24 megapixels from the shared corpus, and
# an RGBA PNG with real transparency for PNG→PNG.
ORIGINALS = [
    # key, corpus file, megapixels as shown in the table
    ("jpeg1", "photos/orion-lowbitrate-1680x1050.jpg", "1.8 MP JPEG"),
    ("jpeg6", "photos/flickr-saw-2725x2225.jpg", "6 MP JPEG"),
    ("jpeg12", "photos/iphonexs-p3-orient6-4032x3024.jpg",
     "12 MP JPEG (P3, EXIF 6)"),
    ("jpeg24", "photos/milkyway-24mp-4000x6000.jpg", "24 MP JPEG"),
    ("png3", "alpha/rgba-blackbug-2048x1536.png", "3 MP RGBA PNG"),
    # Tiny, for the memory test's many requests.
    ("pngtiny", "alpha/rgba8-basn6a08.png", "32×32 RGBA PNG"),
]


def describe(key):
    return next(d for k, _, d in ORIGINALS if k == key)


def extension(key):
    return ".png" if key.startswith("png") else ".jpg"


def build_source_root(corpus, root, links):
    """Fills `root` with `links` hard links of each original."""
    for key, name, _ in ORIGINALS:
        folder = os.path.join(root, key)
        os.makedirs(folder, exist_ok=True)
        first = os.path.join(folder, "0" + extension(key))
        if not os.path.exists(first):
            shutil.copyfile(os.path.join(corpus, name), first)
        for n in range(1, links):
            path = os.path.join(folder, "%d%s" % (n, extension(key)))
            if not os.path.exists(path):
                os.link(first, path)


def make_large(corpus, scratch):
    """The originals for the memory test that the corpus lacks, made once
    with the vips command and its default JPEG settings: a 54 MP baseline
    JPEG (the 24 MP photo scaled by 1.5) and the 24 MP photo saved as a
    progressive JPEG."""
    photo = os.path.join(corpus, "photos/milkyway-24mp-4000x6000.jpg")
    made = {
        "jpeg54": os.path.join(scratch, "milkyway-54mp-6000x9000.jpg"),
        "progressive24": os.path.join(
            scratch, "milkyway-24mp-progressive.jpg"),
    }
    if not os.path.exists(made["jpeg54"]):
        subprocess.run(["vips", "resize", photo,
                        made["jpeg54"], "1.5"], check=True)
    if not os.path.exists(made["progressive24"]):
        subprocess.run(["vips", "copy", photo,
                        made["progressive24"] + "[interlace]"],
                       check=True)
    return made
