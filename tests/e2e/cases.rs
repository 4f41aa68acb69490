//! The shared cases (`../shared/cases`): each is a kind of fault image
//! servers have shipped, with the answer a correct server gives. Each test
//! carries the case's id and says what went wrong elsewhere.

use crate::harness::{Originals, Server, cases};
use crate::images::{decode, pixel_at};

const RED: [u8; 3] = [200, 30, 30];
const GREEN: [u8; 3] = [40, 160, 60];
const BLUE: [u8; 3] = [40, 60, 200];
const YELLOW: [u8; 3] = [230, 200, 40];
const GREY: [u8; 3] = [128, 128, 128];

fn server_for(inputs: &[&str]) -> (Originals, Server) {
    let originals = Originals::new();
    for input in inputs {
        originals.add(input, &cases().join("inputs").join(input));
    }
    let server = Server::start(&originals.root);
    (originals, server)
}

/// CIE76 ΔE between two sRGB colours, through CIELAB (D65).
fn delta_e(a: [u8; 3], b: [u8; 3]) -> f64 {
    fn lab(c: [u8; 3]) -> [f64; 3] {
        let lin = |v: u8| {
            let v = v as f64 / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        let (r, g, b) = (lin(c[0]), lin(c[1]), lin(c[2]));
        let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
        let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
        let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
        let f = |t: f64| {
            if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 }
        };
        let (fx, fy, fz) = (f(x), f(y), f(z));
        [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
    }
    let (a, b) = (lab(a), lab(b));
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2))
        .sqrt()
}

fn rgb(p: [u8; 4]) -> [u8; 3] {
    [p[0], p[1], p[2]]
}

fn assert_near(
    image: &image::DynamicImage,
    fx: f64,
    fy: f64,
    want: [u8; 3],
    max: f64,
) {
    let got = rgb(pixel_at(image, fx, fy));
    let d = delta_e(got, want);
    assert!(
        d <= max,
        "px({fx},{fy}) = {got:?}, want {want:?} within ΔE {max}: {d:.1}"
    );
}

/// B01: a photo stored sideways (EXIF 6) must be rotated, and its size
/// limits taken from the upright picture; thumbor once returned a square.
#[test]
fn b01_orientation_6_is_rotated_before_sizing() {
    let input = "exif_orient6_display_450x600_stored_600x450.jpg";
    let (_originals, server) = server_for(&[input]);
    for (options, size) in
        [("w_450,h_600,f_jpeg", (450, 600)), ("w_225,f_webp", (225, 300))]
    {
        let reply = server.get(&format!("/img/{options}/{input}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let decoded = decode(&reply);
        assert_eq!((decoded.width, decoded.height), size, "{options}");
        let image = decoded.image.unwrap();
        assert_near(&image, 0.25, 0.25, RED, 8.0);
        assert_near(&image, 0.75, 0.25, GREEN, 8.0);
        assert_near(&image, 0.25, 0.75, BLUE, 8.0);
        assert_near(&image, 0.75, 0.75, YELLOW, 8.0);
    }
}

/// B03: a CMYK JPEG without a profile needs the fallback profile; other
/// servers inverted it or read it as RGB.
#[test]
fn b03_cmyk_without_a_profile_keeps_its_colours() {
    let input = "cmyk_adobe_noicc_patches_256.jpg";
    let (_originals, server) = server_for(&[input]);
    for format in ["jpeg", "webp"] {
        let reply = server.get(&format!("/img/w_128,f_{format}/{input}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let decoded = decode(&reply);
        assert_eq!((decoded.width, decoded.height), (128, 128));
        let image = decoded.image.unwrap();
        let [r, g, b, a] = pixel_at(&image, 0.25, 0.25);
        assert!(
            r >= 235 && g >= 235 && b >= 235 && a == 255,
            "paper white: {r},{g},{b},{a}"
        );
        let [r, g, b, _] = pixel_at(&image, 0.75, 0.25);
        assert!(
            r >= 200 && g <= 90 && b <= 90,
            "M100 Y100 is red: {r},{g},{b}"
        );
        let [r, g, b, _] = pixel_at(&image, 0.25, 0.75);
        assert!(r <= 60 && g >= 120 && b >= 190, "C100 is cyan: {r},{g},{b}");
        let [r, g, b, _] = pixel_at(&image, 0.75, 0.75);
        assert!(r <= 70 && g <= 70 && b <= 70, "K100 is black: {r},{g},{b}");
    }
}

/// B04: an embedded wide-gamut profile must be converted to sRGB before
/// it is stripped, or the colours go dull (ΔE 36).
#[test]
fn b04_an_embedded_profile_is_converted_to_srgb() {
    let input = "widegamut_icc_red_patch_256.jpg";
    let (_originals, server) = server_for(&[input]);
    for format in ["jpeg", "webp"] {
        let reply = server.get(&format!("/img/w_128,f_{format}/{input}"));
        let image = decode(&reply).image.unwrap();
        assert_near(&image, 0.5, 0.5, RED, 4.0);
        assert_near(&image, 0.12, 0.12, GREEN, 5.0);
        assert_near(&image, 0.12, 0.88, GREY, 3.0);
    }
}

/// B05: transparency turned into JPEG must land on white, not on the
/// black hidden under transparent pixels.
#[test]
fn b05_transparent_png_to_jpeg_is_flattened_on_white() {
    let input = "rgba_transparent_bg_red_disc_200.png";
    let (_originals, server) = server_for(&[input]);
    let jpeg = decode(&server.get(&format!("/img/w_100,f_jpeg/{input}")));
    assert_eq!((jpeg.width, jpeg.height), (100, 100));
    let image = jpeg.image.unwrap();
    let corner = rgb(pixel_at(&image, 0.02, 0.02));
    assert!(corner.iter().all(|c| *c >= 250), "white corner: {corner:?}");
    assert_near(&image, 0.5, 0.5, RED, 6.0);
    assert_near(&image, 0.5, 0.2, [147, 157, 227], 8.0);

    let png = decode(&server.get(&format!("/img/w_100,f_png/{input}")));
    let image = png.image.unwrap();
    assert!(image.color().has_alpha(), "PNG keeps alpha");
    assert!(pixel_at(&image, 0.02, 0.02)[3] <= 2);
    assert_eq!(pixel_at(&image, 0.5, 0.5)[3], 255);
    let ring = pixel_at(&image, 0.5, 0.2)[3];
    assert!((118..=138).contains(&ring), "half-transparent ring: {ring}");
}

/// B10: headers that declare billions of pixels are refused from the
/// header, fast, before any decoding.
#[test]
fn b10_decompression_bombs_are_refused_from_the_header() {
    let inputs = [
        "jpeg_header_claims_64250x64250_pixel_flood.jpg",
        "png_1bit_50000x50000_valid_decompression_bomb.png",
    ];
    let (_originals, server) = server_for(&inputs);
    for input in inputs {
        let started = std::time::Instant::now();
        let reply = server.get(&format!("/img/w_300,f_jpeg/{input}"));
        assert!(
            [400, 413, 422].contains(&reply.status),
            "{input}: {}",
            reply.status
        );
        assert!(
            started.elapsed().as_secs_f64() < 1.0,
            "{input} refused quickly"
        );
    }
    // A very wide, short image is within the limit and keeps its shape.
    let wide = "png_width_65536_height_16_grey.png";
    let (_originals, server) = server_for(&[wide]);
    let reply = server.get(&format!("/img/w_1024,f_png/{wide}"));
    assert!(reply.status == 200 || [400, 413, 422].contains(&reply.status));
    if reply.status == 200 {
        let image = decode(&reply);
        assert_eq!((image.width, image.height), (1024, 1));
    }
}

/// B11: a truncated or corrupt JPEG is refused, not served grey-filled,
/// and nothing is cached.
#[test]
fn b11_damaged_jpegs_are_refused_and_not_cached() {
    let inputs = [
        "jpeg_640x480_truncated_at_45pct_no_eoi.jpg",
        "jpeg_640x480_corrupt_scan_bytes_midstream.jpg",
    ];
    let (_originals, server) = server_for(&inputs);
    for input in inputs {
        let reply = server.get(&format!("/img/w_320,f_jpeg/{input}"));
        assert!(
            [400, 415, 422].contains(&reply.status),
            "{input}: {}",
            reply.status
        );
        assert!(
            image::guess_format(&reply.body).is_err(),
            "the body is not an image"
        );
    }
    assert_eq!(server.cache_files(), Vec::<String>::new());
}

/// B12: a large progressive JPEG renders without running out of memory,
/// even four at once.
#[test]
fn b12_a_large_progressive_jpeg_renders() {
    let input = "jpeg_progressive_8000x8000_gradient.jpg";
    let (_originals, server) = server_for(&[input]);
    let requests: Vec<_> = (0..4)
        .map(|n| {
            server.get_in_background(&format!(
                "/img/w_300,f_png,q_{}/{input}",
                90 + n
            ))
        })
        .collect();
    for request in requests {
        assert_eq!(request.join().unwrap().status, 200);
    }
    let image = decode(&server.get(&format!("/img/w_300,f_png/{input}")))
        .image
        .unwrap();
    assert_near(&image, 0.5, 0.5, [128, 128, 140], 3.0);
    assert_near(&image, 0.05, 0.05, [13, 12, 140], 5.0);
    assert_near(&image, 0.95, 0.95, [242, 243, 139], 5.0);
}

/// B17: absurd sizes are refused instead of allocating gigapixels.
#[test]
fn b17_absurd_sizes_are_refused() {
    let input = "tiny_quadrants_64x64.jpg";
    let (_originals, server) = server_for(&[input]);
    for options in ["w_9999999", "w_50000,h_50000"] {
        let reply = server.get(&format!("/img/{options},f_jpeg/{input}"));
        assert_eq!(reply.status, 400, "{options}");
    }
    let reply = server.get(&format!("/img/w_4000,f_jpeg/{input}"));
    assert_eq!(decode(&reply).width, 64, "never enlarged");
}

/// B19: with automatic format, the answer follows Accept and says so in
/// Vary; an explicit format does not.
#[test]
fn b19_auto_format_varies_on_accept() {
    let input = "generic_photo_like_640x427.jpg";
    let (_originals, server) = server_for(&[input]);
    let auto = format!("/img/w_300,f_auto/{input}");
    let table = [
        ("image/avif,image/webp,*/*", ["image/avif", "image/webp"].as_slice()),
        ("*/*", &["image/jpeg"]),
        ("image/png,image/*;q=0.8", &["image/jpeg"]),
    ];
    for (accept, types) in table {
        let reply = server.get_with(&auto, &[("Accept", accept)]);
        assert_eq!(reply.status, 200);
        let sent = reply.header("content-type").unwrap();
        assert!(types.contains(&sent), "{accept}: {sent}");
        assert_eq!(reply.header("vary"), Some("Accept"));
    }
    let fixed = server.get_with(
        &format!("/img/w_300,f_jpeg/{input}"),
        &[("Accept", "image/webp,*/*")],
    );
    assert_eq!(fixed.header("content-type"), Some("image/jpeg"));
}

/// B20: the Content-Type matches the bytes, cold and cached, with nosniff.
#[test]
fn b20_content_type_matches_the_bytes() {
    let inputs =
        ["png_bytes_with_jpg_extension.jpg", "generic_photo_like_640x427.jpg"];
    let (_originals, server) = server_for(&inputs);
    let reply = server.get("/img/w_60/png_bytes_with_jpg_extension.jpg");
    let decoded = decode(&reply);
    assert_eq!((decoded.width, decoded.height), (60, 40));
    assert_eq!(reply.header("content-type"), Some("image/png"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    for round in ["miss", "hit"] {
        let reply =
            server.get("/img/w_300,f_webp/generic_photo_like_640x427.jpg");
        assert_eq!(reply.header("x-imgworker"), Some(round));
        assert_eq!(reply.header("content-type"), Some("image/webp"));
        assert_eq!(decode(&reply).format, "webp");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    }
    let reply =
        server.get("/img/w_60,f_jpeg/png_bytes_with_jpg_extension.jpg");
    assert_eq!(reply.header("content-type"), Some("image/jpeg"));
    assert_eq!(decode(&reply).format, "jpeg");
}

/// B22: zero, negative, non-numeric and empty parameters are 400, never
/// a crash; the worker serves on.
#[test]
fn b22_bad_numbers_are_400_and_the_worker_lives() {
    let input = "tiny_quadrants_64x64.jpg";
    let (_originals, server) = server_for(&[input]);
    let pids = server.worker_pids();
    for options in [
        "w_0", "h_0", "w_0,h_0", "w_-100", "w_abc", "w_", "w_NaN", "w_1e3",
        "q_-1", "q_101", "f_jpeg,w",
    ] {
        let reply = server.get(&format!("/img/{options}/{input}"));
        assert_eq!(reply.status, 400, "{options}: {}", reply.text());
        assert!(reply.text().starts_with("bad option: "), "{options}");
    }
    assert_eq!(server.get(&format!("/img/w_32/{input}")).status, 200);
    assert_eq!(server.worker_pids(), pids, "no worker died");
    assert!(!server.log().contains("panicked"));
}

/// B08: an animated GIF whose later frames are partial rectangles: each
/// must be composed onto the one before, resized alike, and kept, with its
/// delay and the loop count.
#[test]
fn b08_animations_keep_every_composed_frame() {
    use image::AnimationDecoder;

    let input = "gif_anim_6frames_partial_subrects_120.gif";
    let (_originals, server) = server_for(&[input]);
    for format in ["gif", "webp"] {
        let reply = server.get(&format!("/img/w_60,h_60,f_{format}/{input}"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let cursor = std::io::Cursor::new(&reply.body);
        let frames: Vec<image::Frame> = match format {
            "gif" => image::codecs::gif::GifDecoder::new(cursor)
                .unwrap()
                .into_frames()
                .collect_frames()
                .unwrap(),
            _ => image::codecs::webp::WebPDecoder::new(cursor)
                .unwrap()
                .into_frames()
                .collect_frames()
                .unwrap(),
        };
        assert_eq!(frames.len(), 6, "{format}: every frame kept");
        // The loop count, 0 (forever): GIF's NETSCAPE2.0 block, WebP's ANIM.
        let find =
            |tag: &[u8]| reply.body.windows(tag.len()).position(|w| w == tag);
        let loops = match format {
            "gif" => {
                find(b"NETSCAPE2.0").map(|at| &reply.body[at + 13..at + 15])
            }
            _ => find(b"ANIM").map(|at| &reply.body[at + 12..at + 14]),
        };
        assert_eq!(loops, Some(&[0u8, 0][..]), "{format}: loops forever");
        for (k, frame) in frames.iter().enumerate() {
            let (numer, denom) = frame.delay().numer_denom_ms();
            let delay = numer / denom.max(1);
            assert!(
                (110..=130).contains(&delay),
                "{format} frame {k}: delay {delay} ms"
            );
            let image =
                image::DynamicImage::ImageRgba8(frame.buffer().clone());
            assert_eq!(
                (image.width(), image.height()),
                (60, 60),
                "{format} frame {k}"
            );
            assert_near(&image, 0.05, 0.05, GREY, 6.0);
            assert_near(&image, 0.95, 0.95, GREY, 6.0);
            let x = (20.0 + 16.0 * k as f64) / 120.0 + 0.04;
            assert_near(&image, x, 0.5, [240, 120, 20], 12.0);
        }
    }
    // Formats that cannot animate get the first composed frame.
    let still = decode(&server.get(&format!("/img/w_60,h_60,f_png/{input}")));
    assert_near(
        &still.image.unwrap(),
        20.0 / 120.0 + 0.04,
        0.5,
        [240, 120, 20],
        12.0,
    );
}

/// B15: an SVG with scripts and external references: refused (SVG is
/// off by default), and nothing is fetched.
#[test]
fn b15_svg_with_scripts_is_refused_and_fetches_nothing() {
    let input = "svg_script_iframe_external_refs.svg";
    let listener = std::net::TcpListener::bind("127.0.0.1:0");
    let (_originals, server) = server_for(&[input]);
    for options in ["w_200", "w_200,f_png"] {
        let reply = server.get(&format!("/img/{options}/{input}"));
        assert_eq!(reply.status, 415, "{options}");
        assert_ne!(reply.header("content-type"), Some("image/svg+xml"));
    }
    if let Ok(listener) = listener {
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "no connection was made");
    }
}

/// B16: every spelling of a path out of the root is refused, the canary
/// never served, a copy inside the root served.
#[test]
fn b16_traversal_in_every_spelling_is_refused() {
    let canary = "traversal_canary_magenta_16.png";
    let originals = Originals::new();
    originals.add("inside.png", &cases().join("inputs").join(canary));
    std::fs::copy(
        cases().join("inputs").join(canary),
        originals.dir.path().join("X.png"),
    )
    .unwrap();
    let server = Server::start(&originals.root);
    let absolute = originals.dir.path().join("X.png");
    let variants = [
        "../X.png".to_string(),
        "%2e%2e/X.png".into(),
        "%2e%2e%2fX.png".into(),
        "..%2fX.png".into(),
        "%252e%252e%252fX.png".into(),
        "..%5cX.png".into(),
        "....//X.png".into(),
        format!("/{}", absolute.display()),
        format!("file://{}", absolute.display()),
        "file:///etc/passwd".into(),
        "local:///X.png".into(),
    ];
    for variant in variants {
        let reply = server.get(&format!("/img/w_16,f_png/{variant}"));
        assert!(
            [400, 403, 404].contains(&reply.status),
            "{variant}: {}",
            reply.status
        );
        assert!(
            image::guess_format(&reply.body).is_err(),
            "{variant}: no image"
        );
    }
    assert_eq!(server.get("/img/w_16,f_png/inside.png").status, 200);
}
