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
        ("blur_5", "blur: unknown option"),
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
