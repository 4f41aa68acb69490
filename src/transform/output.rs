//! `f_` and `q_`: which format a derivative is written in, and how well.
//!
//! The format decides the file name in the cache tree (its extension is
//! what Nginx takes the `Content-Type` from), so the choice made here must
//! match the `map`s in `nginx/imgworker-http.conf` rule for rule:
//! - `f_jpeg`, `f_png`, `f_webp`, `f_avif`, `f_gif`: that format;
//! - `f_auto`: AVIF if `Accept` names `image/avif`, else WebP if it names
//!   `image/webp`, else a format every browser shows (below);
//! - no `f_`: the original's own format, told from its bytes, not its
//!   name; HEIC and TIFF, which browsers do not show, become JPEG (PNG
//!   when they have transparency).
//!
//! For `f_auto` without AVIF or WebP, JPEG, PNG and GIF originals keep
//! their format and the rest become JPEG, or PNG when transparent.

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

    /// The formats a derivative of this URL may already exist in, for this
    /// `Accept`: what the Nginx snippet's try_files looks for.
    pub fn candidates(&self, accept: &str) -> Vec<Format> {
        use Format::*;
        match self.format {
            FormatChoice::Fixed(format) => vec![format],
            FormatChoice::Source => vec![Jpeg, Png, Webp, Gif, Avif],
            FormatChoice::Auto if accept.contains("image/avif") => vec![Avif],
            FormatChoice::Auto if accept.contains("image/webp") => vec![Webp],
            FormatChoice::Auto => vec![Jpeg, Png, Gif],
        }
    }

    /// Picks the output format for an original and a request's `Accept`.
    pub fn resolve(
        &self,
        source: SourceFormat,
        has_alpha: bool,
        accept: &str,
    ) -> Format {
        match self.format {
            FormatChoice::Fixed(format) => format,
            FormatChoice::Source => source.as_output(has_alpha),
            FormatChoice::Auto => {
                if accept.contains("image/avif") {
                    Format::Avif
                } else if accept.contains("image/webp") {
                    Format::Webp
                } else {
                    source.as_universal(has_alpha)
                }
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

    #[test]
    fn a_fixed_format_ignores_accept() {
        let out = Output {
            format: FormatChoice::Fixed(Format::Webp),
            ..Output::default()
        };
        assert_eq!(
            out.resolve(SourceFormat::Jpeg, false, "*/*"),
            Format::Webp
        );
    }

    #[test]
    fn auto_prefers_avif_then_webp_then_the_original() {
        let out = Output { format: FormatChoice::Auto, ..Output::default() };
        assert_eq!(
            out.resolve(SourceFormat::Jpeg, false, MODERN),
            Format::Avif
        );
        let webp_only = "image/webp,*/*";
        assert_eq!(
            out.resolve(SourceFormat::Jpeg, false, webp_only),
            Format::Webp
        );
        assert_eq!(out.resolve(SourceFormat::Png, true, "*/*"), Format::Png);
        assert_eq!(
            out.resolve(SourceFormat::Webp, false, "*/*"),
            Format::Jpeg
        );
        assert_eq!(out.resolve(SourceFormat::Webp, true, "*/*"), Format::Png);
    }

    #[test]
    fn keeping_the_format_turns_heic_into_jpeg() {
        let out = Output::default();
        assert_eq!(
            out.resolve(SourceFormat::Heic, false, MODERN),
            Format::Jpeg
        );
        assert_eq!(out.resolve(SourceFormat::Png, true, MODERN), Format::Png);
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
