//! Integration tests: the real `imgworker` binary behind a real Nginx,
//! started by [`harness`] on a free loopback port with the project's own
//! Nginx snippet, answering requests for the shared corpus
//! (`../shared/corpus` beside the project).
//!
//! - `harness`: starting and stopping the pair, HTTP, reading the log;
//! - `images`: decoding answers with a second decoder (the `image` crate);
//! - `api`: sizes, fit modes and formats, on real photos;
//! - `orientation`: every EXIF orientation comes out upright;
//! - `browser`: a page of images in headless Chromium;
//! - `caching`: hits never reach a worker; headers of hits and misses;
//! - `colour`: profiles, CMYK, bit depth, greyscale and transparency;
//! - `faults`: broken originals, escaping paths, bad options;
//! - `legacy`: Glide and TimThumb URLs, translated by the snippet;
//! - `supervision`: killed workers, malformed FastCGI, stopping;
//! - `cases`: the shared cases of faults other servers shipped;
//! - `operations`: status, reloads, check-config, systemd units;
//! - `packaging`: the Debian package and what it holds;
//! - `security`: signed URLs and other defences against abuse.

mod harness;
mod images;

mod api;
mod browser;
mod caching;
mod cases;
mod colour;
mod faults;
mod legacy;
mod operations;
mod orientation;
mod packaging;
mod security;
mod supervision;
