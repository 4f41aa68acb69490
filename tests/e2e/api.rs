//! The URL API on real photos: every fit mode and every output format
//! gives the size and format asked for.

use crate::harness::{Originals, Reply, Server, cases, corpus};
use crate::images::{decode, frames, mime};

/// 2725x2225, no EXIF orientation.
const SAW: &str = "photos/flickr-saw-2725x2225.jpg";

/// What Chromium and Firefox send for an `<img>`: AVIF and WebP.
const BROWSER: &str =
    "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";

/// What Safari 17 sends: the same two, WebP first.
const SAFARI: &str = "image/webp,image/avif,image/jxl,image/heic,\
                      image/heic-sequence,video/*;q=0.8,image/png,\
                      image/svg+xml,image/*;q=0.8,*/*;q=0.5";

#[test]
fn each_fit_mode_gives_its_size() {
    let server = Server::start(&corpus());
    // (options, expected width, expected height) for a 2725x2225 photo.
    let table = [
        ("w_300", 300, 245),
        ("h_200", 245, 200),
        ("w_300,h_300", 300, 245),
        ("w_300,h_300,fit_inside", 300, 245),
        ("w_300,h_300,fit_cover", 300, 300),
        ("w_300,h_300,fit_contain", 300, 300),
        ("w_300,h_300,fit_fill", 300, 300),
        ("w_300,h_300,fit_outside", 367, 300),
        ("w_300,h_100,fit_cover", 300, 100),
        ("w_100,h_300,fit_outside", 367, 300),
    ];
    for (options, width, height) in table {
        let reply = server.get(&format!("/img/{options}/{SAW}"));
        assert_eq!(reply.status, 200, "{options}: {}", reply.text());
        let image = decode(&reply);
        assert_eq!(
            (image.width, image.height),
            (width, height),
            "{options} from 2725x2225"
        );
        assert_eq!(image.format, "jpeg", "{options} keeps the JPEG format");
    }
}

#[test]
fn contain_pads_with_white_and_cover_fills_the_box() {
    let server = Server::start(&corpus());
    let contain = decode(
        &server.get(&format!("/img/w_300,h_100,fit_contain,f_png/{SAW}")),
    );
    let image = contain.image.unwrap();
    // The photo is 122 px wide in a 300 px box: the left edge is padding.
    let edge = crate::images::pixel_at(&image, 0.01, 0.5);
    assert!(edge[..3].iter().all(|c| *c == 255), "padding is white: {edge:?}");
    let middle = crate::images::pixel_at(&image, 0.5, 0.5);
    assert!(
        middle[..3].iter().any(|c| *c < 250),
        "the photo is in the middle"
    );
}

#[test]
fn each_output_format_is_what_it_says() {
    let server = Server::start(&corpus());
    for format in ["jpeg", "png", "webp", "avif", "gif"] {
        let reply = server.get(&format!("/img/w_200,f_{format}/{SAW}"));
        assert_eq!(reply.status, 200, "f_{format}: {}", reply.text());
        assert_eq!(
            reply.header("content-type"),
            Some(mime(format)),
            "f_{format}"
        );
        let image = decode(&reply);
        assert_eq!(image.format, format);
        assert_eq!((image.width, image.height), (200, 163), "f_{format}");
    }
}

#[test]
fn quality_changes_the_size_of_a_jpeg() {
    let server = Server::start(&corpus());
    let low = server.get(&format!("/img/w_400,q_20/{SAW}"));
    let high = server.get(&format!("/img/w_400,q_95/{SAW}"));
    assert!(
        low.body.len() * 2 < high.body.len(),
        "q_20 is far smaller than q_95"
    );
}

#[test]
fn a_large_photo_is_never_enlarged_and_a_small_box_is_exact() {
    let server = Server::start(&corpus());
    let reply = server.get("/img/w_4000/photos/pool-square-1535x1535.jpg");
    let image = decode(&reply);
    assert_eq!((image.width, image.height), (1535, 1535), "no enlargement");
    let reply = server.get("/img/w_300/photos/milkyway-24mp-4000x6000.jpg");
    let image = decode(&reply);
    assert_eq!((image.width, image.height), (300, 450), "24 MP to 300 wide");
}

#[test]
fn auto_format_follows_the_accept_header() {
    let server = Server::start(&corpus());
    let url = format!("/img/w_300,f_auto/{SAW}");
    let chrome =
        "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    let old_safari =
        "image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5";
    let legacy = "image/png,image/*;q=0.8,*/*;q=0.5";
    for (accept, format) in
        [(chrome, "avif"), (old_safari, "webp"), (legacy, "jpeg")]
    {
        // Twice: the miss, then the hit, each with its own format.
        for round in ["miss", "hit"] {
            let reply = server.get_with(&url, &[("Accept", accept)]);
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("x-imgworker"), Some(round), "{accept}");
            assert_eq!(
                reply.header("vary"),
                Some("Accept"),
                "{round} {accept}"
            );
            assert_eq!(decode(&reply).format, format, "{round} for {accept}");
            assert_eq!(reply.header("content-type"), Some(mime(format)));
        }
    }
}

/// Asks for `url` twice with `accept`: the miss, then the hit Nginx
/// serves alone. Both vary on Accept; returns the hit.
fn miss_then_hit(server: &Server, url: &str, accept: &str) -> Reply {
    let miss = server.get_with(url, &[("Accept", accept)]);
    assert_eq!(miss.status, 200, "{url}: {}", miss.text());
    assert_eq!(miss.header("x-imgworker"), Some("miss"), "{url} {accept}");
    let handled = server.request_lines().len();
    let hit = server.get_with(url, &[("Accept", accept)]);
    assert_eq!(hit.header("x-imgworker"), Some("hit"), "{url} {accept}");
    assert_eq!(server.request_lines().len(), handled, "no worker saw it");
    assert_eq!(hit.body, miss.body, "the hit is the file the miss made");
    for reply in [&miss, &hit] {
        assert_eq!(reply.header("vary"), Some("Accept"), "{url} {accept}");
        let format = decode(reply).format;
        assert_eq!(reply.header("content-type"), Some(mime(format)));
    }
    hit
}

/// AVIF is written as a still here, so `f_auto` sends an animated
/// original to a browser as animated WebP, every frame of it.
#[test]
fn auto_sends_a_browser_an_animation_as_animated_webp() {
    let originals = Originals::new();
    originals
        .add("five.gif", &corpus().join("animated/any-disposal-5f-32x32.gif"))
        .add(
            "six.gif",
            &cases().join("inputs/gif_anim_6frames_partial_subrects_120.gif"),
        );
    let server = Server::start(&originals.root);
    for (url, count) in
        [("/img/w_16,f_auto/five.gif", 5), ("/img/w_60,f_auto/six.gif", 6)]
    {
        let hit = miss_then_hit(&server, url, BROWSER);
        assert_eq!(decode(&hit).format, "webp", "{url}");
        assert_eq!(frames(&hit).len(), count, "{url}: every frame kept");
    }
}

/// Without WebP in `Accept`, an animation goes out as GIF, the format
/// every browser animates; never as WebP made for another client.
#[test]
fn auto_sends_an_animation_as_gif_where_webp_is_not_taken() {
    let server = Server::start(&corpus());
    let url = "/img/w_16,f_auto/animated/any-disposal-5f-32x32.gif";
    let webp = miss_then_hit(&server, url, BROWSER);
    assert_eq!(decode(&webp).format, "webp");
    let safari = server.get_with(url, &[("Accept", SAFARI)]);
    assert_eq!(safari.header("x-imgworker"), Some("hit"), "the same file");
    assert_eq!(safari.body, webp.body);
    for accept in ["*/*", "image/avif,*/*"] {
        let reply = server.get_with(url, &[("Accept", accept)]);
        assert_eq!(reply.status, 200, "{accept}: {}", reply.text());
        assert_eq!(decode(&reply).format, "gif", "{accept}");
        assert_eq!(frames(&reply).len(), 5, "{accept}: every frame kept");
    }
    let hit = miss_then_hit(
        &server,
        "/img/w_20,f_auto/animated/rotating-squares-9f-80x80.webp",
        "*/*",
    );
    assert_eq!(decode(&hit).format, "gif", "an animated WebP too");
    assert_eq!(frames(&hit).len(), 9);
}

/// A still keeps AVIF for a browser that takes it, even after a browser
/// without AVIF was sent the WebP of the same URL.
#[test]
fn auto_still_sends_a_browser_a_still_as_avif() {
    let server = Server::start(&corpus());
    let url = format!("/img/w_60,f_auto/{SAW}");
    let webp = miss_then_hit(&server, &url, "image/webp,*/*");
    assert_eq!(decode(&webp).format, "webp");
    let avif = miss_then_hit(&server, &url, BROWSER);
    let image = decode(&avif);
    assert_eq!(image.format, "avif");
    assert_eq!((image.width, image.height), (60, 49));
    let safari = server.get_with(&url, &[("Accept", SAFARI)]);
    assert_eq!(safari.header("x-imgworker"), Some("hit"), "the same file");
    assert_eq!(safari.body, avif.body);
}

#[test]
fn no_metadata_leaves_with_the_pixels() {
    let server = Server::start(&corpus());
    // A phone photo with GPS in its EXIF and a Display P3 profile, and a
    // WebP original with EXIF of its own.
    let originals = [
        "photos/iphonexs-p3-orient6-4032x3024.jpg",
        "orientation/webp-exif-orient6-521x391.webp",
    ];
    let markers: [&[u8]; 7] =
        [b"Exif", b"EXIF", b"ICC_PROFILE", b"iCCP", b"ICCP", b"XMP ", b"GPS"];
    for original in originals {
        for format in ["jpeg", "png", "webp", "avif", "gif"] {
            let reply =
                server.get(&format!("/img/w_120,f_{format}/{original}"));
            assert_eq!(reply.status, 200);
            for marker in markers {
                let found =
                    reply.body.windows(marker.len()).any(|w| w == marker);
                assert!(
                    !found,
                    "f_{format} of {original} carries {:?}",
                    String::from_utf8_lossy(marker)
                );
            }
        }
    }
}

#[test]
fn enlarge_and_dpr_change_the_box() {
    let server = Server::start(&corpus());
    let small = "formats/gif-hopper-128x128.gif";
    let kept = decode(&server.get(&format!("/img/w_256,f_png/{small}")));
    assert_eq!(
        (kept.width, kept.height),
        (128, 128),
        "not enlarged by default"
    );
    let grown =
        decode(&server.get(&format!("/img/w_256,enlarge_1,f_png/{small}")));
    assert_eq!((grown.width, grown.height), (256, 256));
    let retina = decode(
        &server.get(&format!("/img/w_150,h_100,fit_cover,dpr_2/{SAW}")),
    );
    assert_eq!((retina.width, retina.height), (300, 200));
    let reply = server.get(&format!("/img/w_4000,dpr_10/{SAW}"));
    assert_eq!(reply.status, 400, "dpr is 1 to 8");
    let reply = server.get(&format!("/img/w_3000,dpr_2/{SAW}"));
    assert_eq!(reply.status, 400, "{}", reply.text());
}

#[test]
fn turns_mirrors_grey_blur_sharpen_and_background() {
    use crate::harness::{Originals, cases};
    use crate::images::pixel_at;

    let originals = Originals::new();
    let inputs = cases().join("inputs");
    originals.add("q.jpg", &inputs.join("tiny_quadrants_64x64.jpg"));
    originals
        .add("disc.png", &inputs.join("rgba_transparent_bg_red_disc_200.png"));
    let server = Server::start(&originals.root);
    let image = |options: &str, file: &str| {
        let reply = server.get(&format!("/img/{options}/{file}"));
        assert_eq!(reply.status, 200, "{options}: {}", reply.text());
        decode(&reply).image.unwrap()
    };
    // Which quadrant colour sits top left: red, green, blue or yellow.
    let top_left = |img: &image::DynamicImage| {
        let [r, g, b, _] = pixel_at(img, 0.2, 0.2);
        match (r > 150, g > 120, b > 150) {
            (true, false, false) => "red",
            (false, true, false) => "green",
            (false, false, true) => "blue",
            (true, true, false) => "yellow",
            other => panic!("unexpected colour {r},{g},{b}: {other:?}"),
        }
    };
    assert_eq!(top_left(&image("f_png", "q.jpg")), "red");
    assert_eq!(top_left(&image("r_90,f_png", "q.jpg")), "blue", "clockwise");
    assert_eq!(top_left(&image("r_180,f_png", "q.jpg")), "yellow");
    assert_eq!(top_left(&image("r_270,f_png", "q.jpg")), "green");
    assert_eq!(top_left(&image("flip_h,f_png", "q.jpg")), "green");
    assert_eq!(top_left(&image("flip_v,f_png", "q.jpg")), "blue");

    // A turned box: 32 wide and 64 high after the turn.
    let turned = image("w_32,h_64,fit_fill,r_90,f_png", "q.jpg");
    assert_eq!((turned.width(), turned.height()), (32, 64));

    let [r, g, b, _] = pixel_at(&image("grey_1,f_png", "q.jpg"), 0.2, 0.2);
    assert!(r == g && g == b, "grey: {r},{g},{b}");

    // A blur mixes the quadrants where they meet; without it they stay apart.
    let sharp_edge = pixel_at(&image("f_png", "q.jpg"), 0.5, 0.2);
    let blurred_edge = pixel_at(&image("blur_8,f_png", "q.jpg"), 0.5, 0.2);
    assert!(
        (sharp_edge[0] as i32 - blurred_edge[0] as i32).abs() > 20
            || (sharp_edge[1] as i32 - blurred_edge[1] as i32).abs() > 20,
        "{sharp_edge:?} vs {blurred_edge:?}"
    );
    let sharpened = image("sharpen_1.5,f_png", "q.jpg");
    assert_eq!((sharpened.width(), sharpened.height()), (64, 64));

    // bg_: transparency flattened on it, and contain padded with it.
    let corner = pixel_at(&image("bg_0000ff,f_jpeg", "disc.png"), 0.02, 0.02);
    assert!(corner[2] > 230 && corner[0] < 30, "blue corner: {corner:?}");
    let padded = image("w_128,h_64,fit_contain,bg_00ff00,f_png", "q.jpg");
    let side = pixel_at(&padded, 0.02, 0.5);
    assert!(
        side[1] > 230 && side[0] < 30 && side[3] == 255,
        "green padding: {side:?}"
    );
}

#[test]
fn gravity_chooses_what_cover_keeps() {
    use crate::harness::{Originals, cases};
    use crate::images::pixel_at;

    let originals = Originals::new();
    originals.add("q.jpg", &cases().join("inputs/tiny_quadrants_64x64.jpg"));
    let server = Server::start(&originals.root);
    // A 32x64 window of the 64x64 quadrants: the left or the right half.
    let half = |gravity: &str| {
        let reply = server
            .get(&format!("/img/w_32,h_64,fit_cover,g_{gravity},f_png/q.jpg"));
        assert_eq!(reply.status, 200, "g_{gravity}: {}", reply.text());
        let image = decode(&reply);
        assert_eq!((image.width, image.height), (32, 64), "g_{gravity}");
        let [r, g, _, _] = pixel_at(&image.image.unwrap(), 0.5, 0.25);
        if r > 150 && g < 100 {
            "left"
        } else if g > 120 && r < 100 {
            "right"
        } else {
            "?"
        }
    };
    assert_eq!(half("w"), "left");
    assert_eq!(half("nw"), "left");
    assert_eq!(half("e"), "right");
    assert_eq!(half("se"), "right");
    assert_eq!(half("fp-10-50"), "left");
    assert_eq!(half("fp-90-50"), "right");
    for gravity in ["c", "smart", "entropy"] {
        let image = decode(
            &server
                .get(&format!("/img/w_32,h_64,fit_cover,g_{gravity}/q.jpg")),
        );
        assert_eq!((image.width, image.height), (32, 64), "g_{gravity}");
    }
    assert_eq!(server.get("/img/w_32,h_64,fit_cover,g_up/q.jpg").status, 400);
}

#[test]
fn progressive_jpeg_interlaced_png_and_lossless_webp() {
    let server = Server::start(&corpus());
    // A progressive JPEG has a SOF2 marker (FF C2); a baseline one SOF0.
    let baseline = server.get(&format!("/img/w_200/{SAW}")).body;
    let progressive = server.get(&format!("/img/w_200,prog_1/{SAW}")).body;
    let has =
        |bytes: &[u8], marker: [u8; 2]| bytes.windows(2).any(|w| w == marker);
    assert!(has(&progressive, [0xff, 0xc2]) && !has(&baseline, [0xff, 0xc2]));
    // PNG's interlace method is the last byte of IHDR (offset 28).
    let png = server.get(&format!("/img/w_100,f_png,prog_1/{SAW}")).body;
    assert_eq!(png[28], 1, "Adam7");
    // Lossless WebP is the VP8L bitstream.
    let lossless =
        server.get(&format!("/img/w_100,f_webp,lossless_1/{SAW}")).body;
    assert!(lossless.windows(4).any(|w| w == b"VP8L"));
    let lossy = server.get(&format!("/img/w_100,f_webp/{SAW}")).body;
    assert!(!lossy.windows(4).any(|w| w == b"VP8L"));
    assert_eq!(server.get(&format!("/img/w_100,prog_2/{SAW}")).status, 400);
}

#[test]
fn animations_keep_their_frames_up_to_the_limit() {
    use image::AnimationDecoder;

    let server = Server::start_configured(&corpus(), 2, "max_frames = 10\n");
    let frames = |path: &str| {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let cursor = std::io::Cursor::new(reply.body);
        let frames = if path.contains("f_gif")
            || path.ends_with(".gif") && !path.contains("f_")
        {
            image::codecs::gif::GifDecoder::new(cursor)
                .unwrap()
                .into_frames()
                .collect_frames()
        } else {
            image::codecs::webp::WebPDecoder::new(cursor)
                .unwrap()
                .into_frames()
                .collect_frames()
        };
        frames.unwrap()
    };
    // 9 frames of WebP, 5 of GIF: all kept, each resized.
    let webp = frames("/img/w_40/animated/rotating-squares-9f-80x80.webp");
    assert_eq!(webp.len(), 9);
    assert!(webp.iter().all(|f| f.buffer().dimensions() == (40, 40)));
    // The log gives one frame's size and the count, not the stacked strip.
    assert!(
        server.log().contains("out=40x40 format=webp"),
        "{}",
        server.log()
    );
    assert!(server.log().contains(" frames=9"), "{}", server.log());
    let gif = frames("/img/w_16,f_gif/animated/any-disposal-5f-32x32.gif");
    assert_eq!(gif.len(), 5);
    let to_webp =
        frames("/img/w_16,f_webp/animated/any-disposal-5f-32x32.gif");
    assert_eq!(to_webp.len(), 5, "GIF to animated WebP");
    // 30 frames is over the limit of 10.
    let reply =
        server.get("/img/w_40/animated/rotating-squares-30f-80x80.gif");
    assert_eq!(reply.status, 422);
    assert!(
        reply.text().contains("30 frames, over the limit of 10"),
        "{}",
        reply.text()
    );
    // A still format takes the first frame, whatever the count.
    let still =
        server.get("/img/w_40,f_jpeg/animated/rotating-squares-30f-80x80.gif");
    assert_eq!(still.status, 200);
}

#[test]
fn crop_keeps_a_rectangle_of_the_upright_original() {
    use crate::harness::{Originals, cases};
    use crate::images::pixel_at;

    let originals = Originals::new();
    let inputs = cases().join("inputs");
    originals.add("q.jpg", &inputs.join("tiny_quadrants_64x64.jpg"));
    // Stored 600x450 with EXIF 6: upright 450x600, red top left.
    originals.add(
        "o6.jpg",
        &inputs.join("exif_orient6_display_450x600_stored_600x450.jpg"),
    );
    let server = Server::start(&originals.root);
    let colour = |path: &str| {
        let reply = server.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let image = decode(&reply);
        let [r, g, b, _] = pixel_at(image.image.as_ref().unwrap(), 0.5, 0.5);
        ((image.width, image.height), (r > 150, g > 120, b > 150))
    };
    let (size, rgb) = colour("/img/crop_0-0-225-300,f_png/o6.jpg");
    assert_eq!(
        (size, rgb),
        ((225, 300), (true, false, false)),
        "red, upright"
    );
    let (size, rgb) = colour("/img/crop_225-300-225-300,w_100,f_png/o6.jpg");
    assert_eq!(
        (size, rgb),
        ((100, 133), (true, true, false)),
        "yellow, then resized"
    );
    // Case B22j: a rectangle reaching past the edge is cut at it.
    let (size, _) = colour("/img/crop_60-0-40-40,f_png/q.jpg");
    assert_eq!(size, (4, 40));
    let outside = server.get("/img/crop_64-0-10-10/q.jpg");
    assert_eq!(outside.status, 400);
    assert!(
        outside.text().contains("outside the 64x64 original"),
        "{}",
        outside.text()
    );
    assert_eq!(server.get("/img/crop_1-2-3/q.jpg").status, 400);
}

#[test]
fn crop_on_an_upside_down_photo_reaching_its_bottom_edge() {
    // Orientation 3 is turned with rows read out of order.
    let server = Server::start(&corpus());
    for file in ["orientation/landscape-3.jpg", "orientation/landscape-4.jpg"]
    {
        let reply =
            server.get(&format!("/img/crop_0-0-1800-1200,w_900/{file}"));
        assert_eq!(reply.status, 200, "{file}: {}", reply.text());
        let image = decode(&reply);
        assert_eq!((image.width, image.height), (900, 600), "{file}");
    }
}

/// Every fit mode against a landscape, a portrait and a square original,
/// with boxes smaller and larger than the original, with and without
/// enlarge_1: the size of each answer.
#[test]
fn output_sizes_for_every_fit_shape_and_box() {
    let server = Server::start(&corpus());
    let landscape = "orientation/landscape-1.jpg"; // 1800x1200
    let portrait = "orientation/portrait-1.jpg"; // 1200x1800
    let square = "photos/pool-square-1535x1535.jpg";
    let small_landscape = "color/grey-alpha8-400x300.png";
    let small_portrait = "color/p3-iphone13mini-gainmap-384x512.jpg";
    let small_square = "formats/gif-hopper-128x128.gif";
    #[rustfmt::skip]
    let table: &[(&str, &str, (u32, u32))] = &[
        // A box smaller than the original.
        (landscape, "w_300,h_300,fit_inside", (300, 200)),
        (landscape, "w_300,h_300,fit_cover", (300, 300)),
        (landscape, "w_300,h_300,fit_contain", (300, 300)),
        (landscape, "w_300,h_300,fit_fill", (300, 300)),
        (landscape, "w_300,h_300,fit_outside", (450, 300)),
        (portrait, "w_300,h_300,fit_inside", (200, 300)),
        (portrait, "w_300,h_300,fit_cover", (300, 300)),
        (portrait, "w_300,h_300,fit_contain", (300, 300)),
        (portrait, "w_300,h_300,fit_fill", (300, 300)),
        (portrait, "w_300,h_300,fit_outside", (300, 450)),
        (square, "w_300,h_200,fit_inside", (200, 200)),
        (square, "w_300,h_200,fit_cover", (300, 200)),
        (square, "w_300,h_200,fit_contain", (300, 200)),
        (square, "w_300,h_200,fit_fill", (300, 200)),
        (square, "w_300,h_200,fit_outside", (300, 300)),
        // A box larger than the original: never enlarged by default.
        (small_landscape, "w_800,h_800,fit_inside", (400, 300)),
        (small_landscape, "w_800,h_800,fit_cover", (400, 300)),
        (small_landscape, "w_800,h_800,fit_contain", (800, 800)),
        (small_landscape, "w_800,h_500,fit_fill", (400, 250)),
        (small_landscape, "w_800,h_800,fit_outside", (400, 300)),
        (small_portrait, "w_768,fit_inside", (384, 512)),
        (small_square, "h_256,fit_cover", (128, 128)),
        // ... unless enlarge_1.
        (small_landscape, "w_800,h_800,fit_inside,enlarge_1", (800, 600)),
        (small_landscape, "w_800,h_800,fit_cover,enlarge_1", (800, 800)),
        (small_landscape, "w_800,h_500,fit_fill,enlarge_1", (800, 500)),
        (small_landscape, "w_800,h_800,fit_outside,enlarge_1", (1067, 800)),
        (small_portrait, "w_768,enlarge_1", (768, 1024)),
        (small_square, "h_256,enlarge_1", (256, 256)),
    ];
    for (original, options, size) in table {
        let reply = server.get(&format!("/img/{options}/{original}"));
        assert_eq!(
            reply.status,
            200,
            "{options} {original}: {}",
            reply.text()
        );
        let image = decode(&reply);
        assert_eq!(
            (image.width, image.height),
            *size,
            "{options} of {original}"
        );
    }
}
