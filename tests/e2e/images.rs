//! Reading answers back with a second decoder, the `image` crate, so a
//! test never trusts libvips to check libvips. AVIF, which that crate
//! cannot decode without a native library, is checked by its signature and
//! the size in its header.

use image::{DynamicImage, GenericImageView, ImageFormat};

use crate::harness::Reply;

/// What an answer's bytes are.
pub struct Decoded {
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    /// The pixels, for every format but AVIF.
    pub image: Option<DynamicImage>,
}

pub fn decode(reply: &Reply) -> Decoded {
    let bytes = &reply.body;
    if bytes.get(4..12) == Some(b"ftypavif") {
        let size =
            imagesize::blob_size(bytes).expect("AVIF header has a size");
        return Decoded {
            format: "avif",
            width: size.width as u32,
            height: size.height as u32,
            image: None,
        };
    }
    let format = image::guess_format(bytes).unwrap_or_else(|err| {
        panic!("answer is not an image ({err}): {:?}", reply.text())
    });
    let image = image::load_from_memory_with_format(bytes, format)
        .unwrap_or_else(|err| {
            panic!("{format:?} answer does not decode: {err}")
        });
    let name = match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        other => panic!("unexpected format {other:?}"),
    };
    let (width, height) = image.dimensions();
    Decoded { format: name, width, height, image: Some(image) }
}

/// The MIME type a format name should be sent as.
pub fn mime(format: &str) -> &'static str {
    match format {
        "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "gif" => "image/gif",
        other => panic!("no MIME type for {other}"),
    }
}

/// Mean absolute difference per channel (0–255) between two images of
/// the same size, compared as 8-bit RGB.
pub fn mean_difference(a: &DynamicImage, b: &DynamicImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let (a, b) = (a.to_rgb8(), b.to_rgb8());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as i64 - *y as i64).unsigned_abs())
        .sum();
    total as f64 / a.as_raw().len() as f64
}

/// The RGB(A) pixel at fractions (fx, fy) of the width and height.
pub fn pixel_at(image: &DynamicImage, fx: f64, fy: f64) -> [u8; 4] {
    let (w, h) = image.dimensions();
    let x = ((w as f64 * fx) as u32).min(w - 1);
    let y = ((h as f64 * fy) as u32).min(h - 1);
    image.to_rgba8().get_pixel(x, y).0
}

/// The frames of an animated GIF or WebP answer, each composed.
pub fn frames(reply: &Reply) -> Vec<image::Frame> {
    use image::AnimationDecoder;

    let cursor = std::io::Cursor::new(&reply.body);
    let frames = match decode(reply).format {
        "gif" => image::codecs::gif::GifDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames(),
        "webp" => image::codecs::webp::WebPDecoder::new(cursor)
            .unwrap()
            .into_frames()
            .collect_frames(),
        other => panic!("{other} cannot hold an animation"),
    };
    frames.expect("every frame decodes")
}
