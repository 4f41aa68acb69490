//! Bad input: broken originals, paths that try to leave the source root,
//! options that do not parse. Each gets its 4xx with a one-line reason,
//! and the pool keeps serving.

use crate::harness::{Originals, Server, corpus};
use crate::images::decode;

/// A request that must succeed after each fault.
const GOOD: &str = "/img/w_64/photos/flickr-saw-2725x2225.jpg";

fn assert_still_serving(server: &Server, after: &str) {
    let reply = server.get(&format!("{GOOD}?after={}", after.len()));
    assert_eq!(reply.status, 200, "the pool still serves after {after}");
}

#[test]
fn each_broken_file_in_the_corpus_gets_its_4xx() {
    let server = Server::start(&corpus());
    let manifest =
        std::fs::read_to_string(corpus().join("MANIFEST.tsv")).unwrap();
    let mut checked = 0;
    for line in manifest.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (file, expected) = (fields[0], fields[5]);
        if !file.starts_with("broken/") {
            continue;
        }
        let reply = server.get(&format!("/img/w_300/{file}"));
        if expected.starts_with("format detected from content")
            || expected.starts_with("no crash/hang: clear 4xx or a tiny valid")
            || expected.starts_with("either rejected")
        {
            // Either answer is right; neither may be a 5xx.
            assert!(
                reply.status == 200 || (400..500).contains(&reply.status),
                "{file}: {} {}",
                reply.status,
                reply.text()
            );
            if reply.status == 200 {
                decode(&reply);
            }
        } else {
            assert!(
                (400..500).contains(&reply.status),
                "{file} should be refused: {} {}",
                reply.status,
                reply.text()
            );
            assert!(reply.text().lines().count() == 1, "one-line reason");
            assert_eq!(
                reply.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
        }
        checked += 1;
        assert_still_serving(&server, file);
    }
    assert!(checked >= 15, "the manifest lists the broken files");
    let cached: Vec<String> = server
        .cache_files()
        .into_iter()
        .filter(|f| f.contains("/broken/"))
        .collect();
    assert!(
        cached.iter().all(|f| f.contains("png-with-jpg-extension")
            || f.contains("fuzz-oss-fuzz")
            || f.contains("huge-")),
        "only images that decoded are cached: {cached:?}"
    );
}

#[test]
fn the_pixel_limit_is_checked_before_decoding() {
    let server = Server::start(&corpus());
    let reply = server.get("/img/w_300/broken/bomb-png-16384x16384.png");
    assert_eq!(reply.status, 422);
    assert!(reply.text().contains("16384x16384"), "{}", reply.text());
}

#[test]
fn paths_that_leave_the_source_root_are_refused() {
    let originals = Originals::new();
    let canary = corpus().join("photos/flickr-saw-2725x2225.jpg");
    originals.add("inside.jpg", &canary);
    // The canary sits beside the root, where an escape would find it.
    std::fs::copy(&canary, originals.dir.path().join("canary.jpg")).unwrap();
    std::os::unix::fs::symlink(
        originals.dir.path().join("canary.jpg"),
        originals.root.join("link-out.jpg"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "inside.jpg",
        originals.root.join("link-in.jpg"),
    )
    .unwrap();
    let server = Server::start(&originals.root);

    let attempts = [
        "/img/w_16/../canary.jpg",
        "/img/w_16/%2e%2e/canary.jpg",
        "/img/w_16/%2E%2E%2Fcanary.jpg",
        "/img/w_16/..%2fcanary.jpg",
        "/img/w_16/%252e%252e%252fcanary.jpg",
        "/img/w_16/..%5ccanary.jpg",
        "/img/w_16/....//canary.jpg",
        "/img/w_16//etc/passwd",
        "/img/w_16/link-out.jpg",
        "/img/w_16/inside.jpg/../../canary.jpg",
    ];
    for attempt in attempts {
        let reply = server.get(attempt);
        assert!(
            [400, 403, 404].contains(&reply.status),
            "{attempt}: {} {}",
            reply.status,
            reply.text()
        );
    }
    assert_eq!(server.get("/img/w_16/inside.jpg").status, 200);
    assert_eq!(
        server.get("/img/w_16/link-in.jpg").status,
        200,
        "links inside work"
    );
    let escaped: Vec<String> = server
        .cache_files()
        .into_iter()
        .filter(|f| f.contains("canary") || f.contains("link-out"))
        .collect();
    assert_eq!(escaped, Vec::<String>::new());
}

#[test]
fn bad_options_get_400_with_a_reason() {
    let server = Server::start(&corpus());
    let table = [
        ("w_0", "w: 0 is not between 1 and 4096"),
        ("w_-100", "w: \"-100\" is not a whole number of pixels"),
        ("w_abc", "w: \"abc\" is not a whole number of pixels"),
        ("w_1e3", "w: \"1e3\" is not a whole number of pixels"),
        ("w_", "w: \"\" is not a whole number of pixels"),
        ("w_99999", "w: 99999 is not between 1 and 4096"),
        ("q_101", "q: \"101\" is not a quality from 1 to 100"),
        ("fit_crop", "fit: \"crop\" is not one of"),
        ("f_tiff", "f: \"tiff\" is not one of"),
        ("zoom_5", "zoom: unknown option"),
        ("w_0300", "w: \"0300\" is not a whole number of pixels"),
        ("w_10,w_20", "w: given more than once"),
    ];
    for (options, reason) in table {
        let reply = server
            .get(&format!("/img/{options}/photos/flickr-saw-2725x2225.jpg"));
        assert_eq!(reply.status, 400, "{options}");
        assert!(
            reply.text().starts_with(&format!("bad option: {reason}")),
            "{options}: {}",
            reply.text()
        );
    }
    assert_still_serving(&server, "bad options");
}

#[test]
fn a_missing_original_is_404() {
    let server = Server::start(&corpus());
    let reply = server.get("/img/w_300/photos/no-such-photo.jpg");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text(), "photos/no-such-photo.jpg: no such original\n");
}

#[test]
fn other_methods_get_405_with_allow_on_hits_and_misses() {
    let server = Server::start(&corpus());
    let url = format!("http://127.0.0.1:{}{GOOD}", server.port);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    // A body larger than the worker would ever read.
    let body = vec![b'x'; 200_000];
    for round in ["miss", "hit"] {
        let mut reply = agent.post(&url).send(&body[..]).unwrap();
        assert_eq!(reply.status().as_u16(), 405, "{round}");
        assert_eq!(reply.headers().get("allow").unwrap(), "GET, HEAD");
        let text = reply.body_mut().read_to_string().unwrap();
        assert_eq!(text, "POST: only GET and HEAD\n", "{round}");
        // Make the derivative for the second round.
        assert_eq!(server.get(GOOD).status, 200);
    }
}

#[test]
fn names_the_file_system_cannot_hold_are_404_or_served_unstored() {
    let originals = Originals::new();
    // 255 bytes: a valid name whose derivative name (+ ".jpg") is too long.
    let long = format!("{}.jpg", "n".repeat(251));
    originals.add(&long, &corpus().join("photos/flickr-saw-2725x2225.jpg"));
    let server = Server::start(&originals.root);
    let too_long = format!("/img/w_10/{}.jpg", "b".repeat(256));
    assert_eq!(server.get(&too_long).status, 404);
    for _ in 0..2 {
        let reply = server.get(&format!("/img/w_10/{long}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-imgworker"), Some("miss"), "never stored");
    }
    assert_eq!(server.cache_files(), Vec::<String>::new());
    // A warning: every request for it renders again.
    let log = server.log();
    let line = log.lines().find(|l| l.contains("cache=unstorable")).unwrap();
    assert!(line.contains("WARN"), "{line}");
}

#[test]
fn a_fifo_or_a_directory_is_not_an_original() {
    let originals = Originals::new();
    nix::unistd::mkfifo(
        &originals.root.join("fifo.jpg"),
        nix::sys::stat::Mode::S_IRWXU,
    )
    .unwrap();
    std::fs::create_dir(originals.root.join("dir.jpg")).unwrap();
    let server = Server::start_with(&originals.root, 1);
    let started = std::time::Instant::now();
    assert_eq!(server.get("/img/w_10/fifo.jpg").status, 404);
    assert_eq!(server.get("/img/w_10/dir.jpg").status, 404);
    assert!(started.elapsed().as_secs() < 5, "the worker did not block");
}

#[test]
fn a_url_cannot_forge_log_lines_or_multi_line_answers() {
    let server = Server::start(&corpus());
    let forged = "/img/w_20%0a2026-12-03T17:40:00.000Z%20ERROR%20worker%20killed%20pid=1/x.jpg";
    let reply = server.get(forged);
    assert!((400..500).contains(&reply.status));
    assert_eq!(reply.text().lines().count(), 1, "{:?}", reply.text());
    let reply = server.get("/img/w_20/nl%0Ax.jpg");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.text().lines().count(), 1, "{:?}", reply.text());
    assert!(
        !server
            .log()
            .lines()
            .any(|l| l.starts_with("2026-12-03T17:40:00.000Z"))
    );
}

#[test]
fn a_derivative_over_the_output_pixel_limit_is_refused_before_decoding() {
    let server = Server::start_configured(
        &corpus(),
        1,
        "max_output_pixels = 1000000\n",
    );
    let started = std::time::Instant::now();
    let reply =
        server.get("/img/w_2000,f_avif/photos/milkyway-24mp-4000x6000.jpg");
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("2000x3000, over the limit of 1000000 pixels"),
        "{}",
        reply.text()
    );
    assert!(started.elapsed().as_secs() < 2, "refused before any work");
    assert_eq!(
        server.get("/img/w_800/photos/milkyway-24mp-4000x6000.jpg").status,
        200
    );
}

#[test]
fn a_derivative_wider_than_its_format_allows_is_a_400_not_a_500() {
    let originals = Originals::new();
    let wide = "png_width_65536_height_16_grey.png";
    originals.add(wide, &crate::harness::cases().join("inputs").join(wide));
    let server = Server::start(&originals.root);
    for format in ["jpeg", "webp", "avif", "gif"] {
        let reply = server.get(&format!("/img/f_{format}/{wide}"));
        assert_eq!(reply.status, 400, "f_{format}: {}", reply.text());
        assert!(reply.text().contains("pixels a side"), "{}", reply.text());
    }
    assert_eq!(server.get(&format!("/img/f_png/{wide}")).status, 200);
    assert_eq!(server.get(&format!("/img/w_1024,f_webp/{wide}")).status, 200);
    assert!(
        !server.log().contains(" ERROR "),
        "no client request is our failure"
    );
}

/// What a fresh-user run found: a large blur held a worker past its time
/// limit, one request's libvips error reached another's answer, and the
/// status page answered any method.
#[test]
fn a_large_blur_is_quick_and_errors_never_leak_between_requests() {
    let server = Server::start_with(&corpus(), 1);
    let started = std::time::Instant::now();
    let blur =
        server.get("/img/blur_100,w_2000/photos/milkyway-24mp-4000x6000.jpg");
    assert_eq!(blur.status, 200, "{}", blur.text());
    assert!(
        started.elapsed().as_secs() < 20,
        "blur cost {:?}",
        started.elapsed()
    );

    let heic =
        server.get("/img/w_202/broken/huge-heic-200mp-12240x16320.heic");
    assert!((400..500).contains(&heic.status));
    let png =
        server.get("/img/w_202/broken/pngsuite-bad-colortype-xc9n2c08.png");
    assert!((400..500).contains(&png.status));
    assert!(
        !png.text().contains("seek"),
        "another request's error: {}",
        png.text()
    );

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://127.0.0.1:{}/imgworker-status", server.port);
    let reply = agent.delete(&url).call().unwrap();
    assert_eq!(reply.status().as_u16(), 405);
}
