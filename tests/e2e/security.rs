//! Abuse: signed URLs, the signature's keys and their rotation.

use std::process::Command;

use crate::harness::{Server, corpus};

const NEW_KEY: &str = "new-key-0123456789abcdef0123456789";
const OLD_KEY: &str = "old-key-0123456789abcdef0123456789";
const URL: &str = "/img/w_80,f_webp/photos/flickr-saw-2725x2225.jpg";

/// `imgworker sign` with the keys of `config`.
fn sign(server: &Server, url: &str) -> String {
    let config = server.config_path();
    let args = [
        "sign".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        url.as_ref(),
    ];
    crate::harness::imgworker_ok(args).trim().to_string()
}

fn keys(server: &Server, keys: &[&str]) {
    let list: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    std::fs::write(
        server.config_path(),
        format!("workers = 2\nsigning_keys = [{}]\n", list.join(", ")),
    )
    .unwrap();
}

#[test]
fn signed_urls_good_missing_wrong_old_key_and_removed_key() {
    let keyed = format!("signing_keys = [{OLD_KEY:?}]\n");
    let server = Server::start_configured(&corpus(), 2, &keyed);
    let old_signed = sign(&server, URL);
    assert!(old_signed.starts_with("/img/w_80,f_webp,s_"), "{old_signed}");

    // Good.
    let reply = server.get(&old_signed);
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Missing, and wrong: refused before anything is decoded.
    let missing = server.get(URL);
    assert_eq!(missing.status, 403);
    assert_eq!(missing.text(), "URL is not signed (s_ option missing)\n");
    let wrong = server.get(&old_signed.replace(",s_", ",s_x"));
    assert_eq!(wrong.status, 403);
    let tampered = server.get(&old_signed.replace("w_80", "w_81"));
    assert_eq!(tampered.status, 403, "options are covered");

    // Rotation: a new key in front, the old one still accepted.
    keys(&server, &[NEW_KEY, OLD_KEY]);
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server
        .wait_for(|s| s.log().contains("reloaded generation=2"), "the reload");
    let new_signed = sign(&server, &URL.replace("w_80", "w_82"));
    assert_eq!(server.get(&new_signed).status, 200);
    assert_eq!(server.get(&old_signed).header("x-imgworker"), Some("hit"));
    let old_fresh = {
        // A URL signed with the old key that is not cached yet.
        let old_only =
            Server::signer_url(OLD_KEY, &URL.replace("w_80", "w_83"));
        server.get(&old_only)
    };
    assert_eq!(old_fresh.status, 200, "old key still accepted");

    // Removed: the old key no longer signs new work.
    keys(&server, &[NEW_KEY]);
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server
        .wait_for(|s| s.log().contains("reloaded generation=3"), "the reload");
    let removed = Server::signer_url(OLD_KEY, &URL.replace("w_80", "w_84"));
    assert_eq!(server.get(&removed).status, 403);
    assert!(!server.log().contains("panicked"));
}

#[test]
fn without_signing_keys_an_s_option_is_refused_not_cached() {
    // Unchecked, every s_ value would be one more file of the same image.
    let server = Server::start(&corpus());
    for url in [
        "/img/w_16,s_x/photos/flickr-saw-2725x2225.jpg",
        "/img/s_AAAAAAAAAAAAAAAAAAAAAA/photos/flickr-saw-2725x2225.jpg",
    ] {
        let reply = server.get(url);
        assert_eq!(reply.status, 400, "{url}");
        assert_eq!(
            reply.text(),
            "bad option: s: URLs are not signed here (signing_keys is \
             empty); remove the s_ option\n"
        );
    }
    assert!(server.cache_files().is_empty());
}

#[test]
fn a_glide_url_on_a_signing_server_without_a_glide_key_says_which_key() {
    let keyed = format!("signing_keys = [{OLD_KEY:?}]\n");
    let server = Server::start_configured(&corpus(), 1, &keyed);
    let reply = server.get("/glide/photos/flickr-saw-2725x2225.jpg?w=40");
    assert_eq!(reply.status, 403);
    assert_eq!(
        reply.text(),
        "Glide URLs are refused: signing_keys is set and glide_sign_key is \
         not\n"
    );
}

/// A render slow enough to be caught in the middle.
const SLOW: &str = "/img/w_3000,f_png/photos/milkyway-24mp-4000x6000.jpg";

#[test]
fn a_worker_killed_mid_request_leaves_no_partial_file() {
    use std::time::Duration;
    let server = Server::start_with(&corpus(), 1);
    let slow = server.get_in_background(SLOW);
    std::thread::sleep(Duration::from_millis(300));
    let victim = server.worker_pids()[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let reply = slow.join().unwrap();
    assert_eq!(
        reply.status, 503,
        "that one request fails, and says when to retry"
    );
    assert!(reply.header("retry-after").is_some());
    assert_eq!(server.cache_files(), Vec::<String>::new(), "no partial file");
    server.wait_for(|s| s.worker_pids().len() == 1, "the replacement");
    assert_eq!(server.get("/imgworker-ping").status, 200);
}

#[test]
fn a_full_cache_disk_answers_503_and_leaves_no_partial_file() {
    let server = Server::start_with(&corpus(), 1);
    // A 64 KiB tmpfs over the cache root, where the kernel allows it.
    std::fs::create_dir_all(&server.cache_root).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
        .arg(&server.cache_root)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!(
            "skipped: this machine cannot mount a tmpfs (needs root and CAP_SYS_ADMIN)"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(server.cache_root.clone());

    let big = server.get("/img/w_2000,f_png/photos/flickr-saw-2725x2225.jpg");
    assert_eq!(big.status, 503, "{}", big.text());
    assert_eq!(big.header("retry-after"), Some("10"));
    assert_eq!(big.text(), "cache is full, try again later\n");
    assert_eq!(
        server.cache_files(),
        Vec::<String>::new(),
        "nothing half-written"
    );
    let small = server.get("/img/w_20/photos/flickr-saw-2725x2225.jpg");
    assert_eq!(small.status, 200, "small ones still fit");
}

#[test]
fn overload_ends_every_request_with_200_or_503() {
    use std::time::{Duration, Instant};

    // One worker and a queue of two: eight clients overflow it.
    let server =
        Server::start_configured(&corpus(), 1, "listen_backlog = 2\n");
    // Mostly new derivatives, so most requests are work.
    let load = server.start_load(8, |client, n| {
        format!(
            "/img/w_{},f_webp/photos/pool-square-1535x1535.jpg",
            100 + (client * 500 + n) % 3900
        )
    });
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let outcomes = load.finish();
    assert!(started.elapsed() < Duration::from_secs(95), "nothing hung");

    let ok = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let busy = outcomes.iter().filter(|(s, r)| *s == 503 && *r).count();
    let other: Vec<&(u16, bool)> = outcomes
        .iter()
        .filter(|(s, r)| !(*s == 200 || (*s == 503 && *r)))
        .take(10)
        .collect();
    assert!(
        other.is_empty(),
        "only 200 or 503 with Retry-After; also {other:?}"
    );
    assert!(ok > 0 && busy > 0, "{ok} served, {busy} told to retry");
    // Every worker is idle again, none stuck.
    let status = server.get("/imgworker-status").text();
    assert!(
        status.contains("active processes:     1\n"),
        "only the one answering:\n{status}"
    );
}

#[test]
fn the_service_unit_is_hardened_to_an_exposure_of_2_or_less() {
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("systemd/imgworker.service");
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is installed (scripts/install-deps)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure in:\n{text}"));
    let exposure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read {line:?}"));
    assert!(exposure <= 2.0, "{line}");
}

#[test]
fn svg_is_refused_unless_switched_on_and_then_only_rasterised() {
    let svg = "formats/svg-viewbox-only.svg";
    let server = Server::start(&corpus());
    let reply = server.get(&format!("/img/w_100/{svg}"));
    assert_eq!(reply.status, 415);
    assert_eq!(
        reply.text(),
        format!("{svg}: SVG originals are not supported\n")
    );
    // The operator's log line says which setting takes them.
    assert!(
        server.log().contains("add \\\"svg\\\" to input_formats"),
        "{}",
        server.log()
    );

    let formats = "input_formats = [\"jpeg\", \"png\", \"svg\"]\n";
    let server = Server::start_configured(&corpus(), 1, formats);
    let reply = server.get(&format!("/img/w_100/{svg}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("content-type"),
        Some("image/png"),
        "never SVG back"
    );
    // Formats left off the list are refused.
    let webp = server.get("/img/w_50/formats/webp-lossy-rgb.webp");
    assert_eq!(webp.status, 415);
    // ImageMagick's formats are never read.
    let bmp = server.get("/img/w_50/formats/bmp-rgb24-127x64.bmp");
    assert_eq!(bmp.status, 415);
}

#[test]
fn presets_stand_for_options_and_presets_only_refuses_the_rest() {
    let config =
        "presets_only = true\n\n[presets]\nthumb = \"w_64,h_64,fit_cover\"\n";
    let server = Server::start_configured(&corpus(), 1, config);
    let reply = server.get("/img/p_thumb/photos/flickr-saw-2725x2225.jpg");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let image = crate::images::decode(&reply);
    assert_eq!((image.width, image.height), (64, 64));
    let refused = server.get("/img/w_65/photos/flickr-saw-2725x2225.jpg");
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.text(),
        "bad option: w: only presets (p_<name>) are allowed\n"
    );
    assert_eq!(
        server.get("/img/p_huge/photos/flickr-saw-2725x2225.jpg").status,
        400
    );
}

#[test]
fn a_canary_outside_the_root_is_never_even_opened() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

    let originals = crate::harness::Originals::new();
    let photo = corpus().join("photos/flickr-saw-2725x2225.jpg");
    originals.add("inside.jpg", &photo);
    let canary = originals.dir.path().join("canary.jpg");
    std::fs::copy(&photo, &canary).unwrap();
    std::os::unix::fs::symlink(&canary, originals.root.join("out.jpg"))
        .unwrap();
    std::os::unix::fs::symlink("../canary.jpg", originals.root.join("up.jpg"))
        .unwrap();
    let server = Server::start(&originals.root);

    let inotify = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
    inotify
        .add_watch(&canary, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_ACCESS)
        .unwrap();
    for attempt in [
        "/img/w_16/out.jpg",
        "/img/w_16/up.jpg",
        "/img/w_16/%2e%2e/canary.jpg",
        "/img/w_16/..%2fcanary.jpg",
        "/img/w_16/%252e%252e%252fcanary.jpg",
    ] {
        let status = server.get(attempt).status;
        assert!([400, 403, 404].contains(&status), "{attempt}: {status}");
    }
    assert_eq!(server.get("/img/w_16/inside.jpg").status, 200);
    let events = inotify.read_events().unwrap_or_default();
    assert!(events.is_empty(), "the canary was opened: {events:?}");
}
