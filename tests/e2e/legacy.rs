//! Drop-in URLs of PHP image scripts, Glide and TimThumb: translated by
//! the Nginx snippet into native URLs, so repeats are static hits and
//! parameter order does not matter.

use crate::harness::{Server, corpus};
use crate::images::{decode, mime};

/// 2725x2225.
const SAW: &str = "photos/flickr-saw-2725x2225.jpg";

#[test]
fn glide_parameters_mean_what_they_mean_to_glide() {
    let server = Server::start_configured(
        &corpus(),
        2,
        "\n[presets]\nsmall = \"w_50\"\n",
    );
    // (query, width, height, format)
    let table = [
        ("w=300", 300, 245, "jpeg"),
        ("h=200", 245, 200, "jpeg"),
        ("w=300&h=300&fit=crop", 300, 300, "jpeg"),
        ("w=300&h=300&fit=crop-top-left", 300, 300, "jpeg"),
        ("w=300&h=300&fit=crop-25-75", 300, 300, "jpeg"),
        ("w=300&h=300&fit=crop-25-75-1.5", 300, 300, "jpeg"),
        ("w=300&h=300&fit=contain", 300, 245, "jpeg"),
        ("w=300&h=300&fit=max", 300, 245, "jpeg"),
        ("w=300&h=300&fit=fill", 300, 300, "jpeg"),
        ("w=300&h=300&fit=fill-max", 300, 300, "jpeg"),
        ("w=300&h=300&fit=stretch", 300, 300, "jpeg"),
        ("w=4000&fit=contain", 4000, 3266, "jpeg"),
        ("w=4000&fit=max", 2725, 2225, "jpeg"),
        ("w=100&dpr=2", 200, 163, "jpeg"),
        ("w=100&or=90", 100, 122, "jpeg"),
        ("w=100&flip=both&fm=png", 100, 82, "png"),
        ("w=100&fm=webp&q=50", 100, 82, "webp"),
        ("w=100&fm=pjpg", 100, 82, "jpeg"),
        ("w=100&fm=avif", 100, 82, "avif"),
        ("w=100&fm=gif", 100, 82, "gif"),
        ("w=100&sharp=30&blur=5&bg=fff", 100, 82, "jpeg"),
        ("p=small", 50, 41, "jpeg"),
        ("crop=1000,500,100,100&w=200", 200, 100, "jpeg"),
        // As Glide's URL builder encodes them.
        ("crop=1000%2C500%2C100%2C100&w=200", 200, 100, "jpeg"),
        ("w=100&bg=%23fff", 100, 82, "jpeg"),
        // Not honoured, and ignored.
        (
            "w=100&bri=20&con=-10&gam=1.5&pixel=5&filt=sepia&border=1,000,overlay",
            100,
            82,
            "jpeg",
        ),
    ];
    for (query, width, height, format) in table {
        let reply = server.get(&format!("/glide/{SAW}?{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        let image = decode(&reply);
        assert_eq!((image.width, image.height), (width, height), "{query}");
        assert_eq!(image.format, format, "{query}");
        assert_eq!(
            reply.header("content-type"),
            Some(mime(format)),
            "{query}"
        );
    }
    // Refusals are in Glide's terms: its parameter, the value sent, and
    // what that parameter takes.
    for (bad, told) in [
        ("w=abc", "w: \"abc\" is not a whole number of pixels"),
        ("w=9999999", "w: \"9999999\" is not a whole number of pixels"),
        ("fit=zoom", "fit: \"zoom\" is not contain, max, fill, fill-max, "),
        ("fit=crop-120-50", "fit: \"crop-120-50\" is not crop-<x%>-<y%> "),
        ("fm=jpeg", "fm: \"jpeg\" is not jpg, pjpg, png, gif, webp or avif"),
        ("dpr=9", "dpr: \"9\" is not a whole ratio from 1 to 8"),
        ("or=45", "or: \"45\" is not auto, 0, 90, 180 or 270"),
        ("flip=hv", "flip: \"hv\" is not h, v or both"),
        ("sharp=0.5", "sharp: \"0.5\" is not a whole number from 0 to 100"),
        ("crop=10-20-30-30", "crop: \"10-20-30-30\" is not W,H,X,Y in "),
        ("w=300,f_png", "w: \"300,f_png\" is not a whole number of pixels"),
        ("bg=ffff", "bg: \"ffff\" is not a colour as 3 or 6 hex digits"),
    ] {
        let reply = server.get(&format!("/glide/{SAW}?{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        let text = reply.text();
        assert!(text.starts_with(&format!("bad option: {told}")), "{text}");
    }
    // A value of the right shape over a limit keeps the limit's reason.
    let over = server.get(&format!("/glide/{SAW}?w=50000"));
    assert!(
        over.text().starts_with("bad option: w: 50000 "),
        "{}",
        over.text()
    );
    let reply = server.get(&format!("/timthumb.php?src={SAW}&zc=9"));
    assert_eq!(reply.status, 400);
    assert_eq!(reply.text(), "bad option: zc: \"9\" is not 0, 1, 2 or 3\n");
}

#[test]
fn a_glide_url_is_a_static_hit_in_any_parameter_order() {
    let server = Server::start(&corpus());
    let first =
        server.get(&format!("/glide/{SAW}?w=120&h=80&fit=crop&fm=webp"));
    assert_eq!(first.header("x-imgworker"), Some("miss"));
    let handled = server.request_lines().len();
    for query in ["fm=webp&fit=crop&h=80&w=120", "h=80&w=120&fm=webp&fit=crop"]
    {
        let again = server.get(&format!("/glide/{SAW}?{query}"));
        assert_eq!(again.header("x-imgworker"), Some("hit"), "{query}");
        assert_eq!(again.body, first.body);
    }
    assert_eq!(
        server.request_lines().len(),
        handled,
        "no worker saw the repeats"
    );
}

#[test]
fn signed_glide_urls_are_checked_as_glide_checks_them() {
    let server = Server::start_configured(
        &corpus(),
        1,
        "glide_sign_key = \"glide-secret\"\n",
    );
    // md5("glide-secret:glide/photos/flickr-saw-2725x2225.jpg?fm=png&w=64"),
    // computed independently with Python's hashlib.
    let good = "f4a91335b4b835c58975f82299724667";
    let computed = imgworker::glide::signature(
        "glide-secret",
        &format!("/glide/{SAW}"),
        "w=64&fm=png",
    );
    assert_eq!(computed, good);
    let reply = server.get(&format!("/glide/{SAW}?w=64&fm=png&s={good}"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reordered = server.get(&format!("/glide/{SAW}?s={good}&fm=png&w=64"));
    assert_eq!(reordered.status, 200, "order does not matter");
    let missing = server.get(&format!("/glide/{SAW}?w=64&fm=png"));
    assert_eq!(missing.status, 403);
    let wrong = server.get(&format!("/glide/{SAW}?w=65&fm=png&s={good}"));
    assert_eq!(wrong.status, 403, "the signature covers the parameters");
}

#[test]
fn without_glide_sign_key_a_glide_signature_is_refused_not_cached() {
    // Unchecked, every s= value would be one more file of the same image.
    let server = Server::start(&corpus());
    for s in ["f4a91335b4b835c58975f82299724667", "abc"] {
        let reply = server.get(&format!("/glide/{SAW}?w=64&s={s}"));
        assert_eq!(reply.status, 400, "{s}");
        assert_eq!(
            reply.text(),
            "bad option: s: Glide signatures are not checked here \
             (glide_sign_key is not set); set it, or drop s from the URLs\n"
        );
    }
    assert!(server.cache_files().is_empty());
    assert_eq!(server.get(&format!("/glide/{SAW}?w=64")).status, 200);
}

#[test]
fn timthumb_parameters_mean_what_they_mean_to_timthumb() {
    let server = Server::start(&corpus());
    let table = [
        ("w=200&h=100", 200, 100),
        ("w=200&h=100&zc=1", 200, 100),
        ("w=200&h=100&zc=0", 200, 100),
        ("w=200&h=100&zc=2&cc=ff0000", 200, 100),
        ("w=200&h=100&zc=3", 122, 100),
        ("w=200&h=100&a=tl", 200, 100),
        ("w=200&h=100&a=br&s=1&q=60", 200, 100),
        ("w=200", 200, 163),
        ("w=4000", 4000, 3266),
        ("w=200&f=2&ct=1", 200, 163),
    ];
    for (query, width, height) in table {
        let reply = server.get(&format!("/timthumb.php?src=/{SAW}&{query}"));
        assert_eq!(reply.status, 200, "{query}: {}", reply.text());
        let image = decode(&reply);
        assert_eq!((image.width, image.height), (width, height), "{query}");
        assert_eq!(image.format, "jpeg", "TimThumb keeps the format");
    }
    // zc=2 pads with the canvas colour: red sides on a 200x100 canvas.
    let padded =
        decode(&server.get(&format!(
            "/timthumb.php?src={SAW}&w=200&h=100&zc=2&cc=ff0000"
        )));
    let side = crate::images::pixel_at(&padded.image.unwrap(), 0.02, 0.5);
    assert!(side[0] > 200 && side[1] < 60, "red padding: {side:?}");
}

#[test]
fn timthumb_never_fetches_remote_sources_and_repeats_are_hits() {
    let server = Server::start(&corpus());
    // Refused in TimThumb's terms, not the /img/ URL it was rewritten to.
    let refused = "/timthumb.php: src: not the path of an original (remote \
                   URLs and dot segments are refused)\n";
    for (src, text) in [
        ("http://example.com/a.jpg", refused),
        ("https://127.0.0.1/a.jpg", refused),
        ("", refused),
        ("../etc/passwd", refused),
        // A path, not a host: looked up under the source root.
        ("//example.com/a.jpg", "example.com/a.jpg: no such original\n"),
    ] {
        let reply = server.get(&format!("/timthumb.php?src={src}&w=10"));
        assert_eq!(reply.status, 404, "{src:?}");
        assert_eq!(reply.text(), text, "{src:?}");
    }
    let first =
        server.get(&format!("/timthumb.php?src=/{SAW}&w=90&h=60&zc=1"));
    assert_eq!(first.header("x-imgworker"), Some("miss"));
    let again = server.get(&format!("/timthumb.php?zc=1&h=60&w=90&src={SAW}"));
    assert_eq!(
        again.header("x-imgworker"),
        Some("hit"),
        "one derivative for both spellings"
    );
}

/// What a third fresh-user run broke: a TimThumb src climbing out of the
/// cache through a rewritten path, and ways around Glide's signature.
#[test]
fn legacy_urls_cannot_climb_out_or_slip_past_signatures() {
    let originals = crate::harness::Originals::new();
    let photo = corpus().join("photos/flickr-saw-2725x2225.jpg");
    originals.add("a.jpg", &photo);
    std::fs::copy(&photo, originals.dir.path().join("canary.jpg")).unwrap();
    let server = Server::start_configured(
        &originals.root,
        1,
        "glide_sign_key = \"glide-secret\"\nsigning_keys = [\"0123456789abcdef0123456789\"]\n",
    );
    // Dot segments in src, up to the canary beside the root: never served.
    // The last climbs from the cache root to the canary's absolute path,
    // which Nginx would append an extension to and serve as a file.
    let climb = format!(
        "{}{}/canary",
        "../".repeat(30),
        originals.dir.path().display().to_string().trim_start_matches('/')
    );
    for src in
        ["../canary", "../../canary", "a/../../canary", "./../canary", &climb]
    {
        let reply = server.get(&format!("/timthumb.php?src={src}&w=20"));
        assert_eq!(reply.status, 404, "{src}");
        assert!(image::guess_format(&reply.body).is_err(), "{src}: no image");
    }
    let path = "/glide/a.jpg";
    let good =
        imgworker::glide::signature("glide-secret", path, "w=30&fm=webp");
    assert_eq!(
        server.get(&format!("{path}?w=30&fm=webp&s={good}")).status,
        200
    );
    // The same parameter twice: Nginx reads the first, the signature the last.
    let twice = server.get(&format!("{path}?w=31&w=30&fm=webp&s={good}"));
    assert_eq!(twice.status, 403);
    // An upper-case signature is another cache key: refused.
    let upper =
        server.get(&format!("{path}?w=30&fm=webp&s={}", good.to_uppercase()));
    assert_eq!(upper.status, 403);
    // A '%' before a multi-byte character: refused, and the worker lives.
    let pids = server.worker_pids();
    let odd = server.get(&format!("{path}?w=20&x=%aé&s={good}"));
    assert_eq!(odd.status, 403);
    assert_eq!(server.worker_pids(), pids, "no worker died");
    assert!(!server.log().contains("panicked"));
    // gs_ in a native URL is not a signature: it cannot ride a signed URL.
    let native =
        Server::signer_url("0123456789abcdef0123456789", "/img/w_40/a.jpg");
    assert_eq!(server.get(&native).status, 200);
    let extra = native.replace("/img/w_40,", "/img/w_40,gs_1,");
    assert!([400, 403].contains(&server.get(&extra).status), "{extra}");
}
