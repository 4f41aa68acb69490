//! `f_` and `q_`: which format a derivative is written in, and how well.
//!
//! The format decides the file name in the cache tree (its extension is
//! what Nginx takes the `Content-Type` from), so the choice made here must
//! match the `map`s in `nginx/imgworker-http.conf` rule for rule:
//! - `f_jpeg`, `f_png`, `f_webp`, `f_avif`, `f_gif`: that format;
//! - `f_auto`: AVIF if `Accept` names `image/avif`, else WebP if it names
//!   `image/webp`, else a format every browser shows (below); but for an
//!   animated GIF or WebP, WebP if `Accept` names `image/webp`, else GIF,
//!   because libvips 8.14 writes AVIF as a still;
//! - no `f_`: the original's own format, told from its bytes, not its
//!   name; HEIC and TIFF, which browsers do not show, become JPEG (PNG
//!   when they have transparency).
//!
//! For `f_auto` without AVIF or WebP, JPEG, PNG and GIF originals keep
//! their format and the rest become JPEG, or PNG when transparent.
//!
//! Nginx cannot tell an animation from a still before it looks, so an
//! `f_auto` hit tries the still's file first and the animation's second
//! ([`Output::candidates`]). `f_auto`'s animated WebP is stored as
//! `.awebp`, not `.webp`: `.webp` is the still a browser without AVIF is
//! sent, and a browser that takes AVIF must not be served it in place of
//! the AVIF still it should get. GIF needs no such mark for browsers
//! without AVIF or WebP: they are sent GIF for a GIF original, still or
//! animated. A client that takes AVIF but not WebP looks for `.gif` after
//! `.avif`, and may find a still GIF made for those browsers; no browser
//! sends such an `Accept` (KNOWN_ISSUES.md).

use super::OptionError;
use crate::vips::{Encoder, Keep};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
    Avif,
    Gif,
}

impl Format {
    fn parse(value: &str) -> Option<Format> {
        Some(match value {
            "jpeg" => Format::Jpeg,
            "png" => Format::Png,
            "webp" => Format::Webp,
            "avif" => Format::Avif,
            "gif" => Format::Gif,
            _ => return None,
        })
    }

    /// The extension of the derivative's file in the cache tree; the
    /// Nginx snippet maps it back to the `Content-Type`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::Gif => "gif",
        }
    }

    pub fn mime_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
            Format::Gif => "image/gif",
        }
    }

    /// The longest side the format's encoder takes (libjpeg, libwebp,
    /// libheif for AVIF that browsers will read, GIF's 16 bits).
    pub fn max_side(self) -> u64 {
        match self {
            Format::Jpeg => 65_500,
            Format::Webp => 16_383,
            Format::Avif => 16_384,
            Format::Gif => 65_535,
            Format::Png => 1 << 31,
        }
    }

    /// Whether the format can hold an animation.
    pub fn can_animate(self) -> bool {
        matches!(self, Format::Gif | Format::Webp)
    }

    /// Whether the format can carry transparency.
    pub fn has_alpha(self) -> bool {
        !matches!(self, Format::Jpeg)
    }
}

/// The format of an original, told from its bytes by libvips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Jpeg,
    Png,
    Webp,
    Gif,
    Avif,
    Heic,
    Tiff,
    Svg,
}

impl SourceFormat {
    /// Every format imgworker can read, by its name in `input_formats`.
    pub const ALL: [(&'static str, SourceFormat); 8] = [
        ("jpeg", SourceFormat::Jpeg),
        ("png", SourceFormat::Png),
        ("webp", SourceFormat::Webp),
        ("gif", SourceFormat::Gif),
        ("avif", SourceFormat::Avif),
        ("heic", SourceFormat::Heic),
        ("tiff", SourceFormat::Tiff),
        ("svg", SourceFormat::Svg),
    ];

    pub fn parse(name: &str) -> Option<SourceFormat> {
        SourceFormat::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    pub fn name(self) -> &'static str {
        SourceFormat::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .expect("every format is listed")
    }

    /// Names the format from libvips' loader and the first bytes; `None`
    /// for formats imgworker does not take (SVG, PDF, BMP, …).
    pub fn identify(loader: &str, bytes: &[u8]) -> Option<SourceFormat> {
        let loader = loader.to_ascii_lowercase();
        Some(if loader.contains("jpeg") {
            SourceFormat::Jpeg
        } else if loader.contains("png") {
            SourceFormat::Png
        } else if loader.contains("webp") {
            SourceFormat::Webp
        } else if loader.contains("gif") {
            SourceFormat::Gif
        } else if loader.contains("heif") {
            // ISO BMFF: the major brand sits at bytes 8..12.
            match bytes.get(8..12) {
                Some(b"avif") | Some(b"avis") => SourceFormat::Avif,
                _ => SourceFormat::Heic,
            }
        } else if loader.contains("tiff") {
            SourceFormat::Tiff
        } else if loader.contains("svg") {
            SourceFormat::Svg
        } else {
            return None;
        })
    }

    /// Whether originals in this format can be animated.
    pub fn can_animate(self) -> bool {
        matches!(self, SourceFormat::Gif | SourceFormat::Webp)
    }

    /// The output for "keep the original's format".
    fn as_output(self, has_alpha: bool) -> Format {
        match self {
            SourceFormat::Jpeg => Format::Jpeg,
            SourceFormat::Png => Format::Png,
            SourceFormat::Webp => Format::Webp,
            SourceFormat::Gif => Format::Gif,
            SourceFormat::Avif => Format::Avif,
            SourceFormat::Heic | SourceFormat::Tiff => universal(has_alpha),
            // Never served back as SVG: only rasterised.
            SourceFormat::Svg => Format::Png,
        }
    }

    /// The output for `f_auto` when the browser takes neither AVIF nor
    /// WebP.
    fn as_universal(self, has_alpha: bool) -> Format {
        match self {
            SourceFormat::Jpeg => Format::Jpeg,
            SourceFormat::Png => Format::Png,
            SourceFormat::Gif => Format::Gif,
            _ => universal(has_alpha),
        }
    }
}

fn universal(has_alpha: bool) -> Format {
    if has_alpha { Format::Png } else { Format::Jpeg }
}

/// What the choice of format needs to know of an original, from its
/// header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Original {
    pub format: SourceFormat,
    pub has_alpha: bool,
    /// Pages in the file: the frames of an animation, 1 for a still.
    pub pages: u32,
}

impl Original {
    /// Whether the original is an animated GIF or WebP. A multi-page TIFF
    /// is a stack of pictures, not an animation.
    pub fn is_animation(&self) -> bool {
        self.pages > 1 && self.format.can_animate()
    }
}

/// A file a derivative may be stored in, `<path>.<extension>` in the
/// cache tree, and the format of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub format: Format,
    pub extension: &'static str,
}

/// The extension of `f_auto`'s animated WebP; Nginx sends it as
/// `image/webp`.
pub const ANIMATED_WEBP: &str = "awebp";

/// What the URL says about the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FormatChoice {
    /// No `f_`: the original's format.
    #[default]
    Source,
    /// `f_auto`: negotiated from the `Accept` header.
    Auto,
    Fixed(Format),
}

/// The output options of one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Output {
    pub format: FormatChoice,
    pub quality: Option<u8>,
    /// `prog_1`: progressive JPEG, interlaced PNG.
    pub progressive: bool,
    /// `lossless_1`: lossless WebP.
    pub lossless: bool,
    /// `keep_copyright`, `keep_icc`, `keep_copyright-icc`: metadata kept.
    pub keep: Keep,
}

/// Per-format default qualities, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Qualities {
    pub jpeg: u8,
    pub webp: u8,
    pub avif: u8,
}

impl Output {
    /// Takes `key_value` if it is an output option.
    pub fn parse_item(
        &mut self,
        key: &str,
        value: &str,
    ) -> Option<Result<(), OptionError>> {
        let result = match key {
            "f" if value == "auto" => {
                self.format = FormatChoice::Auto;
                Ok(())
            }
            "f" => match Format::parse(value) {
                Some(format) => {
                    self.format = FormatChoice::Fixed(format);
                    Ok(())
                }
                None => Err(OptionError::new(
                    key,
                    format!(
                        "{value:?} is not one of jpeg, png, webp, avif, gif, \
                         auto"
                    ),
                )),
            },
            "keep" => {
                let mut keep = Keep::default();
                for part in value.split('-') {
                    match part {
                        "copyright" if !keep.copyright => {
                            keep.copyright = true
                        }
                        "icc" if !keep.icc => keep.icc = true,
                        _ => {
                            return Some(Err(OptionError::new(
                                key,
                                format!(
                                    "{value:?} is not copyright, icc or \
                                     copyright-icc"
                                ),
                            )));
                        }
                    }
                }
                self.keep = keep;
                Ok(())
            }
            "prog" | "lossless" if value == "0" || value == "1" => {
                if key == "prog" {
                    self.progressive = value == "1";
                } else {
                    self.lossless = value == "1";
                }
                Ok(())
            }
            "prog" | "lossless" => {
                Err(OptionError::new(key, format!("{value:?} is not 0 or 1")))
            }
            "q" => match value.parse::<u8>() {
                Ok(q)
                    if (1..=100).contains(&q)
                        && !value.starts_with('0')
                        && value.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    self.quality = Some(q);
                    Ok(())
                }
                _ => Err(OptionError::new(
                    key,
                    format!("{value:?} is not a quality from 1 to 100"),
                )),
            },
            _ => return None,
        };
        Some(result)
    }

    /// Whether the answer depends on the `Accept` header.
    pub fn varies_with_accept(&self) -> bool {
        self.format == FormatChoice::Auto
    }

    /// The files a derivative of this URL may already exist in, for this
    /// `Accept`, in the order the Nginx snippet's try_files looks for
    /// them. For `f_auto`, the still's file comes before the animation's,
    /// and only files in formats `Accept` names, or every browser shows,
    /// are listed.
    pub fn candidates(&self, accept: &str) -> Vec<Candidate> {
        use Format::*;
        let formats = match self.format {
            FormatChoice::Fixed(format) => vec![(format, false)],
            FormatChoice::Source => {
                [Jpeg, Png, Webp, Gif, Avif].map(|f| (f, false)).to_vec()
            }
            FormatChoice::Auto => {
                match (takes_avif(accept), takes_webp(accept)) {
                    (true, true) => vec![(Avif, false), (Webp, true)],
                    (true, false) => vec![(Avif, false), (Gif, true)],
                    (false, true) => vec![(Webp, false), (Webp, true)],
                    (false, false) => {
                        vec![(Jpeg, false), (Png, false), (Gif, false)]
                    }
                }
            }
        };
        formats
            .into_iter()
            .map(|(format, animated)| Candidate {
                format,
                extension: self.extension(format, animated),
            })
            .collect()
    }

    /// The extension of the file a derivative in `format` is stored in:
    /// the format's own, except for `f_auto`'s animated WebP (see the
    /// module comment).
    pub fn extension(&self, format: Format, animated: bool) -> &'static str {
        match (self.format, format) {
            (FormatChoice::Auto, Format::Webp) if animated => ANIMATED_WEBP,
            _ => format.extension(),
        }
    }

    /// Picks the output format for an original and a request's `Accept`.
    pub fn resolve(&self, original: Original, accept: &str) -> Format {
        match self.format {
            FormatChoice::Fixed(format) => format,
            FormatChoice::Source => {
                original.format.as_output(original.has_alpha)
            }
            // AVIF would keep only the first frame.
            FormatChoice::Auto if original.is_animation() => {
                if takes_webp(accept) { Format::Webp } else { Format::Gif }
            }
            FormatChoice::Auto if takes_avif(accept) => Format::Avif,
            FormatChoice::Auto if takes_webp(accept) => Format::Webp,
            FormatChoice::Auto => {
                original.format.as_universal(original.has_alpha)
            }
        }
    }

    /// The encoder and its settings for `format`.
    pub fn encoder(&self, format: Format, defaults: &Qualities) -> Encoder {
        match format {
            Format::Jpeg => Encoder::Jpeg {
                quality: self.quality.unwrap_or(defaults.jpeg),
                progressive: self.progressive,
            },
            // PNG is lossless: `q_` does not apply. Level 6 is zlib's
            // balance of size and time.
            Format::Png => {
                Encoder::Png { compression: 6, interlace: self.progressive }
            }
            Format::Webp => Encoder::Webp {
                quality: self.quality.unwrap_or(defaults.webp),
                effort: 4,
                lossless: self.lossless,
            },
            Format::Avif => Encoder::Avif {
                quality: self.quality.unwrap_or(defaults.avif),
                effort: 2,
            },
            Format::Gif => Encoder::Gif,
        }
    }
}

/// Whether `Accept` names AVIF. A substring, as the Nginx snippet reads
/// it: `image/avif;q=0` counts too.
fn takes_avif(accept: &str) -> bool {
    accept.contains("image/avif")
}

/// Whether `Accept` names WebP, read as [`takes_avif`] reads AVIF.
fn takes_webp(accept: &str) -> bool {
    accept.contains("image/webp")
}

/// Drops the EXIF, XMP and ICC chunks from a WebP file and clears their
/// flags in its VP8X header (the WebP container specification). libvips
/// 8.14's WebP encoder writes a small EXIF block of its own even when told
/// to strip metadata. Bytes that do not parse as WebP come back unchanged.
pub fn strip_webp_metadata(bytes: Vec<u8>, keep: Keep) -> Vec<u8> {
    const ICC: u8 = 0x20;
    const EXIF: u8 = 0x08;
    const XMP: u8 = 0x04;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WEBP"
    {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..12]);
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let tag = &bytes[at..at + 4];
        let size =
            u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap())
                as usize;
        // Chunks are padded to an even length.
        let end = at + 8 + size + (size & 1);
        if end > bytes.len() {
            return bytes;
        }
        match tag {
            b"EXIF" if !keep.copyright => {}
            b"ICCP" if !keep.icc => {}
            b"XMP " => {}
            b"VP8X" if size >= 1 => {
                let flags_at = out.len() + 8;
                out.extend_from_slice(&bytes[at..end]);
                let mut drop = XMP;
                if !keep.copyright {
                    drop |= EXIF;
                }
                if !keep.icc {
                    drop |= ICC;
                }
                out[flags_at] &= !drop;
            }
            _ => out.extend_from_slice(&bytes[at..end]),
        }
        at = end;
    }
    if at != bytes.len() {
        return bytes;
    }
    let riff_size = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_size.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODERN: &str = "image/avif,image/webp,image/apng,*/*;q=0.8";
    const WEBP_ONLY: &str = "image/webp,*/*";
    const AVIF_ONLY: &str = "image/avif,*/*";

    fn still(format: SourceFormat, has_alpha: bool) -> Original {
        Original { format, has_alpha, pages: 1 }
    }

    fn animation(format: SourceFormat, frames: u32) -> Original {
        Original { format, has_alpha: true, pages: frames }
    }

    fn auto() -> Output {
        Output { format: FormatChoice::Auto, ..Output::default() }
    }

    fn extensions(out: &Output, accept: &str) -> Vec<&'static str> {
        out.candidates(accept).iter().map(|c| c.extension).collect()
    }

    #[test]
    fn a_fixed_format_ignores_accept() {
        let out = Output {
            format: FormatChoice::Fixed(Format::Webp),
            ..Output::default()
        };
        let jpeg = still(SourceFormat::Jpeg, false);
        assert_eq!(out.resolve(jpeg, "*/*"), Format::Webp);
    }

    #[test]
    fn auto_prefers_avif_then_webp_then_the_original() {
        let out = auto();
        let jpeg = still(SourceFormat::Jpeg, false);
        assert_eq!(out.resolve(jpeg, MODERN), Format::Avif);
        assert_eq!(out.resolve(jpeg, WEBP_ONLY), Format::Webp);
        let png = still(SourceFormat::Png, true);
        assert_eq!(out.resolve(png, "*/*"), Format::Png);
        let webp = still(SourceFormat::Webp, false);
        assert_eq!(out.resolve(webp, "*/*"), Format::Jpeg);
        let clear_webp = still(SourceFormat::Webp, true);
        assert_eq!(out.resolve(clear_webp, "*/*"), Format::Png);
    }

    #[test]
    fn auto_keeps_an_animation_moving_in_webp_else_gif() {
        let out = auto();
        for original in
            [animation(SourceFormat::Gif, 5), animation(SourceFormat::Webp, 9)]
        {
            assert_eq!(out.resolve(original, MODERN), Format::Webp);
            assert_eq!(out.resolve(original, WEBP_ONLY), Format::Webp);
            assert_eq!(out.resolve(original, AVIF_ONLY), Format::Gif);
            assert_eq!(out.resolve(original, "*/*"), Format::Gif);
        }
    }

    #[test]
    fn auto_takes_a_one_frame_gif_and_a_multi_page_tiff_as_stills() {
        let out = auto();
        let gif = animation(SourceFormat::Gif, 1);
        assert_eq!(out.resolve(gif, MODERN), Format::Avif);
        assert_eq!(out.resolve(gif, "*/*"), Format::Gif);
        let tiff = animation(SourceFormat::Tiff, 3);
        assert_eq!(out.resolve(tiff, MODERN), Format::Avif);
    }

    #[test]
    fn auto_looks_for_the_still_first_then_the_animation() {
        let out = auto();
        assert_eq!(extensions(&out, MODERN), ["avif", "awebp"]);
        assert_eq!(extensions(&out, WEBP_ONLY), ["webp", "awebp"]);
        assert_eq!(extensions(&out, AVIF_ONLY), ["avif", "gif"]);
        assert_eq!(extensions(&out, "*/*"), ["jpg", "png", "gif"]);
    }

    #[test]
    fn every_auto_answer_is_among_the_candidates_for_its_accept() {
        let out = auto();
        let originals = [
            still(SourceFormat::Jpeg, false),
            still(SourceFormat::Png, true),
            still(SourceFormat::Gif, true),
            still(SourceFormat::Webp, true),
            still(SourceFormat::Heic, false),
            animation(SourceFormat::Gif, 5),
            animation(SourceFormat::Webp, 9),
        ];
        for accept in [MODERN, WEBP_ONLY, AVIF_ONLY, "*/*", ""] {
            for original in originals {
                let format = out.resolve(original, accept);
                let animated = original.is_animation() && format.can_animate();
                let stored = Candidate {
                    format,
                    extension: out.extension(format, animated),
                };
                assert!(
                    out.candidates(accept).contains(&stored),
                    "{original:?} for {accept:?}: {stored:?}"
                );
            }
        }
    }

    #[test]
    fn no_auto_candidate_is_a_format_accept_leaves_out() {
        let out = auto();
        let formats = |accept| -> Vec<Format> {
            out.candidates(accept).iter().map(|c| c.format).collect()
        };
        assert!(!formats(AVIF_ONLY).contains(&Format::Webp));
        assert!(!formats(WEBP_ONLY).contains(&Format::Avif));
        for universal in ["*/*", ""] {
            let formats = formats(universal);
            assert!(!formats.contains(&Format::Webp), "{universal:?}");
            assert!(!formats.contains(&Format::Avif), "{universal:?}");
        }
    }

    #[test]
    fn only_auto_stores_an_animated_webp_apart() {
        assert_eq!(auto().extension(Format::Webp, true), "awebp");
        assert_eq!(auto().extension(Format::Webp, false), "webp");
        assert_eq!(auto().extension(Format::Gif, true), "gif");
        let fixed = Output {
            format: FormatChoice::Fixed(Format::Webp),
            ..Output::default()
        };
        assert_eq!(fixed.extension(Format::Webp, true), "webp");
        assert_eq!(Output::default().extension(Format::Webp, true), "webp");
    }

    #[test]
    fn keeping_the_format_turns_heic_into_jpeg() {
        let out = Output::default();
        let heic = still(SourceFormat::Heic, false);
        assert_eq!(out.resolve(heic, MODERN), Format::Jpeg);
        let png = still(SourceFormat::Png, true);
        assert_eq!(out.resolve(png, MODERN), Format::Png);
    }

    #[test]
    fn the_format_is_told_from_the_bytes() {
        let avif = b"\0\0\0\x1cftypavif";
        assert_eq!(
            SourceFormat::identify("VipsForeignLoadHeifBuffer", avif),
            Some(SourceFormat::Avif)
        );
        let heic = b"\0\0\0\x18ftypheic";
        assert_eq!(
            SourceFormat::identify("VipsForeignLoadHeifBuffer", heic),
            Some(SourceFormat::Heic)
        );
        assert_eq!(
            SourceFormat::identify("VipsForeignLoadSvgBuffer", b""),
            Some(SourceFormat::Svg)
        );
        assert_eq!(
            SourceFormat::identify("VipsForeignLoadMagickBuffer", b""),
            None
        );
        assert_eq!(SourceFormat::parse("heic"), Some(SourceFormat::Heic));
        assert_eq!(SourceFormat::Svg.name(), "svg");
    }

    #[test]
    fn quality_is_1_to_100() {
        let mut out = Output::default();
        assert!(out.parse_item("q", "100").unwrap().is_ok());
        for bad in ["0", "101", "-1", "+5", "", "8.5", "080"] {
            assert!(out.parse_item("q", bad).unwrap().is_err(), "{bad}");
        }
    }

    fn chunk(tag: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = tag.to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
        if body.len() % 2 == 1 {
            out.push(0);
        }
        out
    }

    fn webp(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(b"WEBP");
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn webp_metadata_chunks_and_their_flags_are_dropped() {
        let vp8x = chunk(b"VP8X", &[0x2c, 0, 0, 0, 9, 0, 0, 9, 0, 0]);
        let image = chunk(b"VP8 ", b"pixels!");
        let with = webp(&[
            vp8x.clone(),
            chunk(b"ICCP", b"profile"),
            image.clone(),
            chunk(b"EXIF", b"gps"),
            chunk(b"XMP ", b"<x/>"),
        ]);
        let mut bare_vp8x = vp8x;
        bare_vp8x[8] = 0;
        assert_eq!(
            strip_webp_metadata(with, Keep::default()),
            webp(&[bare_vp8x, image])
        );
    }

    #[test]
    fn bytes_that_are_not_webp_are_left_alone() {
        let junk = b"RIFF\x10\0\0\0WEBPVP8 \xff\xff".to_vec();
        assert_eq!(strip_webp_metadata(junk.clone(), Keep::default()), junk);
        assert_eq!(
            strip_webp_metadata(b"GIF89a".to_vec(), Keep::default()),
            b"GIF89a"
        );
    }

    #[test]
    fn unknown_formats_are_refused() {
        let mut out = Output::default();
        let err = out.parse_item("f", "jpg").unwrap().unwrap_err();
        assert!(err.to_string().starts_with("f: \"jpg\""), "{err}");
    }
}
