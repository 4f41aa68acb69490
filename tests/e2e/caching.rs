//! The cache tree: the second request for a URL is a static hit that
//! never reaches a worker, with the headers the miss had.

use crate::harness::{Originals, Server, corpus};
use crate::images::decode;

#[test]
fn the_second_request_is_a_hit_that_never_reaches_a_worker() {
    let server = Server::start(&corpus());
    let url = "/img/w_300,f_webp/photos/milkyway-24mp-4000x6000.jpg";
    let miss = server.get(url);
    assert_eq!(miss.status, 200, "{}", miss.text());
    assert_eq!(miss.header("x-imgworker"), Some("miss"));
    let handled = server.request_lines().len();

    for _ in 0..3 {
        let hit = server.get(url);
        assert_eq!(hit.status, 200);
        assert_eq!(hit.header("x-imgworker"), Some("hit"));
        assert_eq!(hit.body, miss.body, "the hit is the file the miss made");
    }
    assert_eq!(
        server.request_lines().len(),
        handled,
        "no worker saw the hits"
    );
    assert_eq!(
        server.cache_files(),
        ["img/w_300,f_webp/photos/milkyway-24mp-4000x6000.jpg.webp"]
    );
}

#[test]
fn a_miss_and_its_hit_carry_the_same_caching_headers() {
    let server = Server::start(&corpus());
    let url = "/img/w_200/photos/pool-square-1535x1535.jpg";
    let miss = server.get(url);
    let hit = server.get(url);
    assert_eq!(hit.header("x-imgworker"), Some("hit"));
    for name in [
        "cache-control",
        "content-type",
        "etag",
        "last-modified",
        "x-content-type-options",
        "content-length",
    ] {
        assert_eq!(miss.header(name), hit.header(name), "{name}");
    }
    assert!(
        miss.header("cache-control").unwrap().contains("max-age=31536000")
    );
    assert_eq!(miss.header("vary"), None, "no Vary without f_auto");
}

#[test]
fn content_type_follows_the_bytes_not_the_name() {
    let server = Server::start(&corpus());
    // PNG bytes in a file named .jpg: kept as PNG, sent as PNG.
    let url = "/img/w_16/broken/png-with-jpg-extension.jpg";
    for round in ["miss", "hit"] {
        let reply = server.get(url);
        assert_eq!(reply.header("x-imgworker"), Some(round));
        assert_eq!(reply.header("content-type"), Some("image/png"), "{round}");
        assert_eq!(decode(&reply).format, "png");
    }
    // A WebP made from a JPEG is WebP, on the miss and on the hit.
    let url = "/img/w_100,f_webp/photos/flickr-saw-2725x2225.jpg";
    for round in ["miss", "hit"] {
        let reply = server.get(url);
        assert_eq!(reply.header("x-imgworker"), Some(round));
        assert_eq!(
            reply.header("content-type"),
            Some("image/webp"),
            "{round}"
        );
        assert_eq!(decode(&reply).format, "webp");
    }
}

#[test]
fn a_failed_request_leaves_nothing_in_the_cache_tree() {
    let originals = Originals::new();
    originals.add("bad.jpg", &corpus().join("broken/truncated-10000b.jpg"));
    let server = Server::start(&originals.root);
    let reply = server.get("/img/w_300/bad.jpg");
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(server.cache_files(), Vec::<String>::new());
}

#[test]
fn concurrent_requests_for_a_new_derivative_render_it_once() {
    let server = Server::start(&corpus());
    let url = "/img/w_777,f_webp/photos/milkyway-24mp-4000x6000.jpg";
    let clients: Vec<_> =
        (0..12).map(|_| server.get_in_background(url)).collect();
    let replies: Vec<_> =
        clients.into_iter().map(|c| c.join().unwrap()).collect();
    let hit = server.get(url);
    for reply in &replies {
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("etag"),
            hit.header("etag"),
            "every answer is the stored file"
        );
        assert_eq!(reply.body, hit.body);
    }
    let renders = server
        .request_lines()
        .iter()
        .filter(|l| l.contains("w_777") && l.contains("cache=miss"))
        .count();
    assert_eq!(renders, 1, "rendered once:\n{}", server.log());
}
