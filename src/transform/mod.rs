//! From an original's bytes and a URL's options to a derivative's bytes.
//!
//! The options segment of a URL is a comma-separated list of `key_value`
//! items; each option module owns its keys and its parser. The pipeline,
//! in order:
//! 1. identify the format from the bytes and check it is one we take;
//! 2. read the header only, and refuse originals over the pixel limit
//!    before anything is decoded;
//! 3. plan the resize in upright coordinates ([`resize`]), and refuse
//!    derivatives over the output pixel limit;
//! 4. load, shrinking JPEGs in the decoder (shrink-on-load) so a 24 MP
//!    photo is never decoded whole for a small derivative; an animated
//!    GIF or WebP becoming GIF or WebP is loaded whole, and steps 5 to 7
//!    run on each frame;
//! 5. resize with libvips' thumbnail: EXIF orientation, ICC to sRGB;
//! 6. 8-bit sRGB (or greyscale), flattened on `bg_` (white) for JPEG;
//! 7. pad to the box for `fit_contain`; turn, mirror, grey, blur,
//!    sharpen ([`adjust`]);
//! 8. decode everything into memory, so a damaged original fails here,
//!    as bad input, and not inside the encoder; strip all metadata;
//! 9. encode in the chosen format ([`output`]).

pub mod adjust;
pub mod crop;
pub mod gravity;
pub mod output;
pub mod preset;
pub mod resize;
pub mod shrink;

use crate::vips::{self, Crop, Image, Size, Thumbnail};
use adjust::Adjust;
use output::{Format, Original, Output, Qualities, SourceFormat};
pub use preset::Rules;
use resize::{Plan, Resize};

/// One option that could not be taken, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionError {
    key: String,
    reason: String,
}

impl OptionError {
    pub fn new(key: &str, reason: impl Into<String>) -> OptionError {
        OptionError { key: key.to_string(), reason: reason.into() }
    }

    /// The option's key, as the URL wrote it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The same error under another name for its option: the name a
    /// Glide or TimThumb URL gave it.
    pub fn renamed(&self, key: &str) -> Self {
        OptionError { key: key.to_string(), reason: self.reason.clone() }
    }
}

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key comes from the URL: no line breaks into a log or a body.
        write!(f, "{}: {}", self.key.escape_debug(), self.reason)
    }
}

/// Everything a URL asks of one derivative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// `crop_`: the rectangle of the original to start from.
    pub crop: Option<crop::Rect>,
    pub resize: Resize,
    pub adjust: Adjust,
    pub output: Output,
}

impl Options {
    /// Parses an options segment such as `w_300,h_200,fit_cover,f_webp`.
    pub fn parse(
        segment: &str,
        max_side: u32,
    ) -> Result<Options, OptionError> {
        Options::parse_with(segment, &Rules::plain(max_side))
    }

    /// Parses an options segment under a site's rules: presets (`p_`),
    /// `presets_only`, `allowed_sizes`.
    pub fn parse_with(
        segment: &str,
        rules: &Rules,
    ) -> Result<Options, OptionError> {
        let mut preset = None;
        let mut explicit = Vec::new();
        // `_` alone: no options, the original at its own size, re-encoded.
        let segment_items = if segment == NO_OPTIONS && !rules.presets_only {
            Vec::new()
        } else {
            items(segment)?
        };
        for (key, value) in segment_items {
            if key == "p" {
                if preset.is_some() {
                    return Err(OptionError::new(key, "given more than once"));
                }
                preset = Some(rules.preset(value)?);
            } else if rules.presets_only {
                return Err(OptionError::new(
                    key,
                    "only presets (p_<name>) are allowed",
                ));
            } else {
                explicit.push((key, value));
            }
        }

        let mut options = Options::default();
        if let Some(preset) = preset {
            options.apply(&items(preset)?, rules.max_side)?;
        }
        options.apply(&explicit, rules.max_side)?;
        options.resize.check(rules.max_side)?;
        if explicit.iter().any(|(key, _)| *key == "w" || *key == "h") {
            rules.check_size(&options)?;
        }
        Ok(options)
    }

    /// Takes `key_value` pairs, each key at most once.
    fn apply(
        &mut self,
        items: &[(&str, &str)],
        max_side: u32,
    ) -> Result<(), OptionError> {
        let mut seen: Vec<&str> = Vec::new();
        for &(key, value) in items {
            if seen.contains(&key) {
                return Err(OptionError::new(key, "given more than once"));
            }
            seen.push(key);
            if key == "crop" {
                self.crop = Some(crop::Rect::parse(value)?);
                continue;
            }
            let taken = self
                .resize
                .parse_item(key, value, max_side)
                .or_else(|| self.adjust.parse_item(key, value))
                .or_else(|| self.output.parse_item(key, value));
            match taken {
                Some(result) => result?,
                None => return Err(OptionError::new(key, "unknown option")),
            }
        }
        Ok(())
    }
}

/// The options segment that asks for no options.
pub const NO_OPTIONS: &str = "_";

/// Splits an options segment into `key_value` pairs.
fn items(segment: &str) -> Result<Vec<(&str, &str)>, OptionError> {
    segment
        .split(',')
        .map(|item| {
            if item.is_empty() {
                return Err(OptionError::new(
                    "options",
                    "empty option (a doubled or trailing comma)",
                ));
            }
            item.split_once('_').filter(|(key, _)| !key.is_empty()).ok_or_else(
                || {
                    OptionError::new(
                        item,
                        "not an option: options are key_value, such as w_300",
                    )
                },
            )
        })
        .collect()
}

/// Why an original could not be turned into a derivative.
#[derive(Debug)]
pub enum RenderError {
    /// No loader recognises the bytes.
    UnknownFormat,
    /// A format libvips reads but imgworker does not take.
    Unsupported(String),
    /// A format imgworker takes, but not in `input_formats` (SVG, unless
    /// switched on): its lowercase name, as that setting spells it.
    NotEnabled(String),
    /// More pixels than `max_source_pixels`.
    TooManyPixels { width: i32, height: i32, limit: u64 },
    /// An animation with more frames than `max_frames`.
    TooManyFrames { frames: u32, limit: u32 },
    /// The pre-crop rectangle does not fit the original.
    Crop(OptionError),
    /// A derivative with a side longer than its format can hold.
    TooLargeForFormat { format: Format, width: u64, height: u64 },
    /// A derivative larger than `max_output_pixels`.
    OutputTooLarge { width: u64, height: u64, limit: u64 },
    /// The decoder failed: the original is damaged.
    Undecodable(vips::VipsError),
    /// Our failure: the encoder or an operation we should not misuse.
    Internal(vips::VipsError),
}

/// The settings of the pipeline that come from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Frames of an animation kept; more are refused.
    pub max_frames: u32,
    /// Formats of originals taken; others are 415.
    pub input_formats: Vec<SourceFormat>,
    pub max_source_pixels: u64,
    pub max_output_pixels: u64,
    pub fail_on: &'static str,
    pub qualities: Qualities,
}

impl Settings {
    /// The pipeline's settings from the configuration: the one place the
    /// worker and the benchmark's in-process limit both take them from.
    pub fn from_config(config: &crate::config::Config) -> Settings {
        Settings {
            max_frames: config.max_frames,
            input_formats: config
                .input_formats
                .iter()
                .filter_map(|name| SourceFormat::parse(name))
                .collect(),
            max_source_pixels: config.max_source_pixels,
            max_output_pixels: config.max_output_pixels,
            fail_on: config.fail_on.as_vips(),
            qualities: Qualities {
                jpeg: config.jpeg_quality,
                webp: config.webp_quality,
                avif: config.avif_quality,
            },
        }
    }
}

/// A finished derivative.
#[derive(Debug)]
pub struct Derivative {
    pub bytes: Vec<u8>,
    pub format: Format,
    pub source_width: i32,
    pub source_height: i32,
    /// The size of one frame.
    pub width: i32,
    pub height: i32,
    /// Frames of an animation; 1 for a still.
    pub frames: i32,
}

impl Derivative {
    /// Whether it holds every frame of an animation.
    pub fn is_animation(&self) -> bool {
        self.frames > 1
    }
}

/// Makes the derivative of `bytes` that `options` ask for.
pub fn render(
    bytes: &[u8],
    options: &Options,
    accept: &str,
    settings: &Settings,
) -> Result<Derivative, RenderError> {
    // 1. The format, from the bytes; no error text left by another
    // request.
    vips::clear_errors();
    let loader = vips::find_loader(bytes).ok_or(RenderError::UnknownFormat)?;
    let source = SourceFormat::identify(&loader, bytes)
        .ok_or_else(|| RenderError::Unsupported(loader_name(&loader)))?;
    if !settings.input_formats.contains(&source) {
        return Err(RenderError::NotEnabled(source.name().to_string()));
    }

    // 2. The header, and the pixel limit before any decoding.
    let header = Image::load(bytes, "").map_err(RenderError::Undecodable)?;
    let (width, height) = (header.width(), header.height());
    let pixels = width as u64 * height as u64;
    if pixels > settings.max_source_pixels {
        return Err(RenderError::TooManyPixels {
            width,
            height,
            limit: settings.max_source_pixels,
        });
    }

    // 3. The plan, in upright coordinates.
    let swapped = header.orientation() >= 5;
    let (upright_w, upright_h) =
        if swapped { (height, width) } else { (width, height) };
    // A quarter turn comes after the resize: fit the turned box.
    let resize = if options.adjust.swaps_sides() {
        options.resize.swapped()
    } else {
        options.resize
    };
    // The pre-crop rectangle, cut at the edges, stands for the original.
    let region = options
        .crop
        .map(|rect| rect.within(upright_w as u32, upright_h as u32))
        .transpose()
        .map_err(RenderError::Crop)?;
    let (start_w, start_h) = region
        .map(|r| (r.width, r.height))
        .unwrap_or((upright_w as u32, upright_h as u32));
    let plan = resize.plan(start_w, start_h);
    let (out_w, out_h) = plan.output_size(start_w, start_h);
    if out_w * out_h > settings.max_output_pixels {
        return Err(RenderError::OutputTooLarge {
            width: out_w,
            height: out_h,
            limit: settings.max_output_pixels,
        });
    }
    let original = Original {
        format: source,
        has_alpha: header.has_alpha(),
        pages: header.n_pages().max(1) as u32,
    };
    let format = options.output.resolve(original, accept);
    if out_w.max(out_h) > format.max_side() {
        return Err(RenderError::TooLargeForFormat {
            format,
            width: out_w,
            height: out_h,
        });
    }
    let grey_source = header.bands() <= 2;
    let pages = original.pages;
    drop(header);

    // 4. Load, shrinking in the decoder where the format allows. An
    // animation whose output can animate is loaded whole, every frame.
    let animate = original.is_animation() && format.can_animate();
    if animate && pages > settings.max_frames {
        return Err(RenderError::TooManyFrames {
            frames: pages,
            limit: settings.max_frames,
        });
    }
    let mut load_options = format!("fail_on={}", settings.fail_on);
    // The decoder rounds a shrunk side up to whole pixels (2225 rows at
    // 1/8 are 279, not 278.1), which can move the free side of a fitted
    // picture by one pixel: such a picture is resized to the size the
    // original's own proportions give.
    let mut exact = None;
    if source == SourceFormat::Jpeg {
        let shrink = jpeg_shrink(plan.shrink);
        if shrink > 1 {
            load_options.push_str(&format!(",shrink={shrink}"));
            let fitted = plan.thumbnail.crop == Crop::None
                && plan.thumbnail.size != Size::Force
                && plan.window.is_none()
                && plan.canvas.is_none();
            if fitted {
                exact = Some((out_w as i32, out_h as i32));
            }
        }
    }
    if animate {
        load_options.push_str(",n=-1");
    }
    // A pre-crop turns the picture upright first, which reads rows out of
    // order for some orientations.
    let image = if region.is_some() {
        Image::load_random(bytes, &load_options)
    } else {
        Image::load(bytes, &load_options)
    }
    .map_err(RenderError::Undecodable)?;

    // 5 to 7, for the one picture or for each frame.
    let steps = Steps {
        plan: &plan,
        options,
        format,
        source,
        grey_source,
        region,
        upright: (upright_w, upright_h),
        exact,
    };
    let image = if animate {
        let (width, page_height) = (image.width(), image.page_height());
        let frames = (0..pages as i32)
            .map(|page| {
                let frame = image
                    .share()
                    .extract(0, page * page_height, width, page_height)
                    .map_err(RenderError::Undecodable)?;
                steps.frame(frame)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Image::join_frames(frames).map_err(RenderError::Internal)?
    } else {
        steps.frame(image)?
    };

    // 8. Decode now: errors here are the original's. Then no metadata
    // leaves with the pixels.
    let mut image = image.materialise().map_err(RenderError::Undecodable)?;
    image.strip_metadata(options.output.keep);

    // 9. Encode.
    let encoder = options.output.encoder(format, &settings.qualities);
    let keep = options.output.keep;
    let mut bytes =
        image.encode(&encoder, keep).map_err(RenderError::Internal)?;
    if format == Format::Webp {
        bytes = output::strip_webp_metadata(bytes, keep);
    }
    // An animation is its frames stacked; vips_image_get_page_height
    // gives the whole height for a still.
    let frame_height = image.page_height().max(1);
    Ok(Derivative {
        bytes,
        format,
        source_width: upright_w,
        source_height: upright_h,
        width: image.width(),
        height: frame_height,
        frames: image.height() / frame_height,
    })
}

/// What the pipeline does to one picture, or to each frame of an
/// animation: steps 5 to 7.
struct Steps<'a> {
    plan: &'a Plan,
    options: &'a Options,
    format: Format,
    source: SourceFormat,
    grey_source: bool,
    /// The pre-crop rectangle, in pixels of the upright original.
    region: Option<crop::Rect>,
    upright: (i32, i32),
    /// The fitted picture's size, when the decoder's rounding must not
    /// choose it.
    exact: Option<(i32, i32)>,
}

impl Steps<'_> {
    fn frame(&self, mut image: Image) -> Result<Image, RenderError> {
        let (plan, options) = (self.plan, self.options);

        // 4c. The pre-crop: turn upright, then cut the rectangle, scaled
        // to what the decoder's shrink left.
        if let Some(rect) = self.region {
            image = image.autorotate().map_err(RenderError::Undecodable)?;
            let sx = image.width() as f64 / self.upright.0.max(1) as f64;
            let sy = image.height() as f64 / self.upright.1.max(1) as f64;
            let x = ((rect.x as f64 * sx) as i32).min(image.width() - 1);
            let y = ((rect.y as f64 * sy) as i32).min(image.height() - 1);
            let w = ((rect.width as f64 * sx).round() as i32)
                .clamp(1, image.width() - x);
            let h = ((rect.height as f64 * sy).round() as i32)
                .clamp(1, image.height() - y);
            image =
                image.extract(x, y, w, h).map_err(RenderError::Internal)?;
        }

        // 5a. Formats with alpha and no shrink-on-load: a box shrink
        // first (see alpha_shrink).
        let shrink = alpha_shrink(plan.shrink);
        if self.source != SourceFormat::Jpeg && image.has_alpha() && shrink > 1
        {
            image = shrink::with_alpha(image, shrink)
                .map_err(RenderError::Undecodable)?;
        }

        // 5. Resize, upright, in sRGB; cut the gravity's window.
        let thumbnail = match self.exact {
            Some((width, height)) => Thumbnail {
                width,
                height,
                size: Size::Force,
                crop: Crop::None,
            },
            None => plan.thumbnail,
        };
        let mut image =
            image.thumbnail(thumbnail).map_err(RenderError::Undecodable)?;
        if let Some((w, h, gravity)) = plan.window {
            let (full_w, full_h) = (image.width(), image.height());
            let (w, h) = (w.min(full_w), h.min(full_h));
            let (left, top) = gravity.window(full_w, full_h, w, h);
            image = image
                .extract(left, top, w, h)
                .map_err(RenderError::Internal)?;
        }

        // 6. 8-bit sRGB or greyscale; no alpha where the format has none.
        let mut image = image.to_srgb().map_err(RenderError::Internal)?;
        // A grey original with a profile was converted to sRGB, 3 bands
        // of equal values: back to one band, so greyscale stays greyscale.
        if self.grey_source && image.bands() >= 3 {
            image = image.to_grey().map_err(RenderError::Internal)?;
        }
        if !self.format.has_alpha() {
            image = image
                .flatten(options.adjust.background())
                .map_err(RenderError::Internal)?;
        }

        // 7. Pad to the box; then turn, mirror, grey, blur, sharpen.
        if let Some((w, h)) = plan.canvas {
            let padding = padding(
                image.bands(),
                image.has_alpha(),
                options.adjust.background,
            );
            image = image
                .embed_centre(w, h, &padding)
                .map_err(RenderError::Internal)?;
        }
        options.adjust.apply(image).map_err(RenderError::Internal)
    }
}

/// The padding for `fit_contain`: `bg_` when given, opaque; otherwise
/// white, or transparent when the image keeps an alpha channel.
fn padding(
    bands: i32,
    has_alpha: bool,
    background: Option<[u8; 3]>,
) -> Vec<f64> {
    let bands = bands.max(1) as usize;
    let colour_bands = if has_alpha { bands - 1 } else { bands };
    let [r, g, b] = background.unwrap_or([255, 255, 255]).map(f64::from);
    let mut colour = if colour_bands >= 3 {
        vec![r, g, b]
    } else {
        // Greyscale: the background's luminance (Rec. 601).
        vec![0.299 * r + 0.587 * g + 0.114 * b]
    };
    if has_alpha {
        colour.push(if background.is_some() { 255.0 } else { 0.0 });
    }
    colour
}

/// The JPEG decoder's own shrink (1, 2, 4 or 8) for an overall shrink: the
/// largest that does not go below the target, as sharp, imgproxy and
/// Pillow's draft mode choose. Decoding is most of a JPEG render, and at
/// 1/8 instead of 1/4 it costs about a quarter less. libvips' thumbnail
/// leaves a factor of two to the resampler instead, for edges as sharp as
/// a full decode gives; against a full decode, the 1/8 decode's
/// derivative differs more (README, Performance), in fine detail only.
fn jpeg_shrink(shrink: f64) -> u32 {
    match shrink {
        s if s >= 8.0 => 8,
        s if s >= 4.0 => 4,
        s if s >= 2.0 => 2,
        _ => 1,
    }
}

/// The whole factor by which an image with alpha, decoded at full size,
/// is box-shrunk before libvips' thumbnail resamples it. libvips 8.14's
/// thumbnail resamples an image with alpha premultiplied in float, which
/// for a 3 MP RGBA PNG costs four fifths of the render; the box shrink,
/// weighted by alpha in integers ([`shrink`]), costs far less, and leaves
/// at least a factor of two to the resampler, as the JPEG decoder's
/// shrink does. The free side of
/// the box may round one pixel differently than without it, as with
/// shrink-on-load.
fn alpha_shrink(shrink: f64) -> i32 {
    if shrink >= 4.0 { (shrink / 2.0).floor() as i32 } else { 1 }
}

/// `VipsForeignLoadSvgBuffer` → `SVG`, for error messages.
fn loader_name(loader: &str) -> String {
    let name = loader
        .trim_start_matches("VipsForeignLoad")
        .trim_end_matches("Buffer")
        .trim_end_matches("Source")
        .to_ascii_lowercase();
    match name.as_str() {
        // ImageMagick reads BMP, ICO, PSD and more for libvips; imgworker
        // does not let it (untrusted operations are blocked).
        "magick" | "magick7" => "BMP, ICO and other ImageMagick".into(),
        other => other.to_ascii_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::output::FormatChoice;
    use super::resize::Fit;
    use super::*;

    #[test]
    fn a_full_segment_parses() {
        let options =
            Options::parse("w_300,h_200,fit_cover,q_70,f_webp", 4096).unwrap();
        assert_eq!(options.resize.width, Some(300));
        assert_eq!(options.resize.height, Some(200));
        assert_eq!(options.resize.fit, Fit::Cover);
        assert_eq!(options.output.quality, Some(70));
        assert_eq!(options.output.format, FormatChoice::Fixed(Format::Webp));
    }

    #[test]
    fn unknown_keys_and_repeats_are_refused() {
        let err = Options::parse("w_300,x_1", 4096).unwrap_err();
        assert_eq!(err.to_string(), "x: unknown option");
        let err = Options::parse("w_300,w_400", 4096).unwrap_err();
        assert_eq!(err.to_string(), "w: given more than once");
        let err = Options::parse("w300", 4096).unwrap_err();
        assert!(err.to_string().starts_with("w300: not an option"));
        let err = Options::parse("w_300,", 4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "options: empty option (a doubled or trailing comma)"
        );
        assert!(Options::parse("", 4096).is_err());
        let err = Options::parse("_300", 4096).unwrap_err();
        assert!(err.to_string().starts_with("_300: not an option"), "{err}");
        let err = Options::parse("w\n_300", 4096).unwrap_err();
        assert!(err.to_string().starts_with("w\\n: unknown option"), "{err}");
    }

    #[test]
    fn jpeg_shrink_is_the_largest_that_keeps_the_target() {
        assert_eq!(jpeg_shrink(1.0), 1);
        assert_eq!(jpeg_shrink(1.9), 1);
        assert_eq!(jpeg_shrink(2.0), 2);
        assert_eq!(jpeg_shrink(7.99), 4);
        assert_eq!(jpeg_shrink(9.08), 8);
        assert_eq!(jpeg_shrink(20.0), 8);
    }

    #[test]
    fn alpha_shrink_leaves_work_for_the_resampler() {
        assert_eq!(alpha_shrink(3.9), 1);
        assert_eq!(alpha_shrink(4.0), 2);
        assert_eq!(alpha_shrink(6.83), 3);
    }

    #[test]
    fn loader_names_are_short() {
        assert_eq!(loader_name("VipsForeignLoadSvgBuffer"), "SVG");
        assert_eq!(
            loader_name("VipsForeignLoadMagickBuffer"),
            "BMP, ICO and other ImageMagick"
        );
    }
}
