//! Colour done right, on the corpus's real files: embedded profiles and
//! CMYK converted to sRGB, 16-bit brought to 8-bit, greyscale kept grey,
//! transparency kept where the format can hold it.

use image::{ColorType, GenericImageView};

use crate::harness::{Server, corpus};
use crate::images::{decode, pixel_at};

fn saturation(p: [u8; 4]) -> i32 {
    let max = p[..3].iter().max().copied().unwrap() as i32;
    let min = p[..3].iter().min().copied().unwrap() as i32;
    max - min
}

#[test]
fn a_wide_gamut_profile_keeps_its_saturation_in_srgb() {
    let server = Server::start(&corpus());
    // The same photo with its Adobe RGB profile and with it stripped: read
    // through the profile, colours come out more saturated.
    let tagged = decode(
        &server.get("/img/w_200,f_png/color/adobergb-canon5d2-1900x1263.jpg"),
    );
    let stripped = decode(&server.get(
        "/img/w_200,f_png/color/adobergb-stripped-canon5d2-1900x1263.jpg",
    ));
    let (tagged, stripped) = (tagged.image.unwrap(), stripped.image.unwrap());
    let total = |img: &image::DynamicImage| -> i64 {
        img.pixels().map(|(_, _, p)| saturation(p.0) as i64).sum()
    };
    assert!(
        total(&tagged) > total(&stripped) * 105 / 100,
        "converted from Adobe RGB, the photo keeps more saturation"
    );
}

#[test]
fn cmyk_with_and_without_a_profile_is_not_a_negative() {
    let server = Server::start(&corpus());
    for file in [
        "color/cmyk-swop-icc-1080x1080.jpg",
        "color/cmyk-no-icc-1080x1080.jpg",
    ] {
        let reply = server.get(&format!("/img/w_200,f_png/{file}"));
        assert_eq!(reply.status, 200, "{file}: {}", reply.text());
        let image = decode(&reply).image.unwrap();
        assert_eq!(image.color().channel_count(), 3, "{file}: RGB, not CMYK");
        // Sunglasses on white: the paper stays white, the green lenses
        // green and dark. Inverted, the paper would be black.
        let paper = pixel_at(&image, 0.02, 0.02);
        assert!(
            paper[..3].iter().all(|c| *c >= 245),
            "{file}: paper {paper:?}"
        );
        let [r, g, b, _] = pixel_at(&image, 0.15, 0.5);
        assert!(g > r + 15 && g < 200 && b < 200, "{file}: lens {r},{g},{b}");
    }
    // The two files are one picture: the fallback profile lands close.
    let a = decode(
        &server.get("/img/w_100,f_png/color/cmyk-swop-icc-1080x1080.jpg"),
    )
    .image
    .unwrap();
    let b = decode(
        &server.get("/img/w_100,f_png/color/cmyk-no-icc-1080x1080.jpg"),
    )
    .image
    .unwrap();
    let difference = crate::images::mean_difference(&a, &b);
    assert!(
        difference < 25.0,
        "fallback profile close to the embedded one: {difference:.1}"
    );
}

#[test]
fn sixteen_bits_become_eight_and_grey_stays_grey() {
    let server = Server::start(&corpus());
    let table = [
        ("color/rgb16-photo-weld-1024x684.png", "f_png", ColorType::Rgb8),
        ("color/rgb16-basn2c16.png", "f_png", ColorType::Rgb8),
        ("color/grey16-basn0g16.png", "f_png", ColorType::L8),
        ("color/grey8-basn0g08.png", "f_png", ColorType::L8),
        ("color/grey-dotgain-icc-715x483.jpg", "f_png", ColorType::L8),
        ("color/grey-alpha8-400x300.png", "f_png", ColorType::La8),
        ("alpha/palette-trns-tbbn3p08.png", "f_png", ColorType::Rgba8),
        ("alpha/rgba16-basn6a16.png", "f_png", ColorType::Rgba8),
    ];
    for (file, options, colour) in table {
        let reply = server.get(&format!("/img/w_32,{options}/{file}"));
        assert_eq!(reply.status, 200, "{file}: {}", reply.text());
        let image = decode(&reply).image.unwrap();
        assert_eq!(image.color(), colour, "{file}");
    }
    // 16-bit tones land in 8 bits without clipping to black or white.
    let weld = decode(
        &server.get("/img/w_200,f_png/color/rgb16-photo-weld-1024x684.png"),
    )
    .image
    .unwrap();
    let middle = pixel_at(&weld, 0.5, 0.5);
    assert!(middle[..3].iter().any(|c| (10..245).contains(c)), "{middle:?}");
}

#[test]
fn transparency_is_kept_where_it_can_be_and_flattened_on_white_where_not() {
    let server = Server::start(&corpus());
    for file in [
        "alpha/palette-trns-tbbn3p08.png",
        "alpha/rgba-clover-512x512.png",
        "alpha/webp-lossy-alpha-100x100.webp",
    ] {
        for format in ["png", "webp"] {
            let image =
                decode(&server.get(&format!("/img/w_32,f_{format}/{file}")))
                    .image
                    .unwrap();
            assert!(
                image.color().has_alpha(),
                "{file} as {format} keeps alpha"
            );
        }
        let jpeg = decode(&server.get(&format!("/img/w_32,f_jpeg/{file}")))
            .image
            .unwrap();
        assert!(!jpeg.color().has_alpha());
    }
    let clear = decode(
        &server.get("/img/w_50,f_jpeg/alpha/fully-transparent-300x300.png"),
    );
    let corner = pixel_at(&clear.image.unwrap(), 0.5, 0.5);
    assert!(
        corner[..3].iter().all(|c| *c >= 250),
        "white, not black: {corner:?}"
    );
}

/// Loads an answer with libvips itself, for its metadata fields.
fn fields(bytes: &[u8]) -> Vec<String> {
    imgworker::vips::start(1).ok();
    let image =
        imgworker::vips::Image::load(bytes, "").expect("the answer loads");
    image.field_names()
}

#[test]
fn copyright_and_profile_are_kept_only_on_request() {
    use imgworker::vips::{Encoder, Image, Keep};

    // A phone photo with GPS and a Display P3 profile, given a copyright.
    imgworker::vips::start(1).unwrap();
    let photo = std::fs::read(
        corpus().join("photos/iphonexs-p3-orient6-4032x3024.jpg"),
    )
    .unwrap();
    let mut image = Image::load(&photo, "").unwrap();
    image.set_string("exif-ifd0-Copyright", "(c) A Photographer");
    let keep_all = Keep { copyright: true, icc: true };
    let marked = image
        .encode(&Encoder::Jpeg { quality: 90, progressive: false }, keep_all)
        .unwrap();
    assert!(fields(&marked).iter().any(|f| f == "exif-ifd0-Copyright"));

    let originals = crate::harness::Originals::new();
    std::fs::write(originals.root.join("marked.jpg"), &marked).unwrap();
    let server = Server::start(&originals.root);
    for format in ["jpeg", "webp"] {
        let stripped = fields(
            &server.get(&format!("/img/w_100,f_{format}/marked.jpg")).body,
        );
        assert!(
            !stripped
                .iter()
                .any(|f| f.starts_with("exif-") || f == "icc-profile-data"),
            "f_{format} strips everything: {stripped:?}"
        );
        let kept = fields(
            &server
                .get(&format!(
                    "/img/w_100,f_{format},keep_copyright/marked.jpg"
                ))
                .body,
        );
        assert!(
            kept.iter().any(|f| f == "exif-ifd0-Copyright"),
            "f_{format}: {kept:?}"
        );
        assert!(
            !kept.iter().any(|f| f.contains("GPS") || f == "exif-ifd0-Make"),
            "f_{format} keeps only the copyright: {kept:?}"
        );
        let profile = fields(
            &server
                .get(&format!("/img/w_100,f_{format},keep_icc/marked.jpg"))
                .body,
        );
        assert!(
            profile.iter().any(|f| f == "icc-profile-data"),
            "f_{format}: {profile:?}"
        );
        assert!(!profile.iter().any(|f| f.contains("GPS")));
    }
    assert_eq!(server.get("/img/w_100,keep_gps/marked.jpg").status, 400);
}

#[test]
fn the_integer_alpha_shrink_matches_libvips_premultiplied_one() {
    use imgworker::transform::shrink;
    use imgworker::vips::{Encoder, Image, Keep};

    // 8-bit images with alpha are box-shrunk by imgworker's own code before
    // the thumbnail; libvips' premultiplied shrink, in float, is the
    // reference. Colour under almost no alpha is invisible and rounds
    // differently, so only pixels with some opacity are compared.
    imgworker::vips::start(1).unwrap();
    let png = |image: Image| {
        let image = image.materialise().unwrap();
        let encoder = Encoder::Png { compression: 1, interlace: false };
        let bytes = image.encode(&encoder, Keep::default()).unwrap();
        image::load_from_memory(&bytes).unwrap()
    };
    for (file, factor) in [
        ("alpha/rgba-blackbug-2048x1536.png", 3),
        ("alpha/rgba-clover-512x512.png", 5),
        ("alpha/palette-trns-tbbn3p08.png", 2),
        ("color/grey-alpha8-400x300.png", 7),
        ("alpha/webp-lossy-alpha-100x100.webp", 4),
    ] {
        let bytes = std::fs::read(corpus().join(file)).unwrap();
        let ours =
            png(shrink::with_alpha(Image::load(&bytes, "").unwrap(), factor)
                .unwrap());
        let reference = png(Image::load(&bytes, "")
            .unwrap()
            .shrink_with_alpha(factor)
            .unwrap());
        assert_eq!(ours.dimensions(), reference.dimensions(), "{file}");
        assert_eq!(ours.color(), reference.color(), "{file}");
        let (ours, reference) = (ours.to_rgba8(), reference.to_rgba8());
        for (a, b) in ours.pixels().zip(reference.pixels()) {
            assert!(a[3].abs_diff(b[3]) <= 1, "{file}: alpha {a:?} {b:?}");
            if b[3] >= 16 {
                assert!(
                    a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) <= 2),
                    "{file}: {a:?} against libvips' {b:?}"
                );
            }
        }
    }
}
