//! `w_`, `h_`, `fit_`, `enlarge_` and `dpr_`: the box a derivative must
//! fit, and how.
//!
//! The box is given in the picture's upright orientation, as people see
//! it: a photo stored landscape with EXIF orientation 6 is a portrait, and
//! `w_300` makes it 300 pixels wide as shown. `dpr_2` doubles the box for
//! screens with two device pixels to a CSS pixel. Nothing is enlarged
//! unless the URL says `enlarge_1`: without it, a box larger than the
//! original leaves the original at its own size.

use super::OptionError;
use super::gravity::{self, Gravity};
use crate::vips::{Crop, Size, Thumbnail};

/// How the picture meets a box that has both a width and a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fit {
    /// Scaled to fill the box, the overflow cropped from the centre.
    Cover,
    /// Scaled to fit inside the box, then padded to the box.
    Contain,
    /// Stretched to the box, aspect ratio ignored.
    Fill,
    /// Scaled to fit inside the box; the box is a maximum.
    #[default]
    Inside,
    /// Scaled to cover the box, nothing cropped; the box is a minimum.
    Outside,
}

impl Fit {
    fn parse(value: &str) -> Option<Fit> {
        Some(match value {
            "cover" => Fit::Cover,
            "contain" => Fit::Contain,
            "fill" => Fit::Fill,
            "inside" => Fit::Inside,
            "outside" => Fit::Outside,
            _ => return None,
        })
    }
}

/// The resize options of one URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resize {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fit: Fit,
    pub enlarge: bool,
    /// Device pixel ratio, 1 to 8; `None` is 1.
    pub dpr: Option<u32>,
    /// What `fit_cover` keeps.
    pub gravity: Gravity,
}

/// libvips' largest coordinate: "no limit" for a side the URL left out.
const UNBOUNDED: i32 = 10_000_000;

/// What the pipeline does for one original: the thumbnail call, and the
/// canvas to pad onto for `fit_contain`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub thumbnail: Thumbnail,
    pub canvas: Option<(i32, i32)>,
    /// A window to cut from the resized picture, for `fit_cover` with a
    /// gravity libvips' thumbnail cannot crop by itself.
    pub window: Option<(i32, i32, Gravity)>,
    /// The factor the original shrinks by (1 or more), for shrink-on-load.
    pub shrink: f64,
}

impl Plan {
    /// The size the derivative will have, at most, for an original that
    /// is `width` × `height` upright.
    pub fn output_size(&self, width: u32, height: u32) -> (u64, u64) {
        if let Some((w, h)) = self.canvas {
            return (w as u64, h as u64);
        }
        if let Some((w, h, _)) = self.window {
            let scale = 1.0 / self.shrink;
            let full_w = (width as f64 * scale).round().max(1.0);
            let full_h = (height as f64 * scale).round().max(1.0);
            return (full_w.min(w as f64) as u64, full_h.min(h as f64) as u64);
        }
        let t = self.thumbnail;
        if t.size == Size::Force {
            return (t.width as u64, t.height as u64);
        }
        let scale = 1.0 / self.shrink;
        if t.crop != Crop::None {
            let w = (width as f64 * scale).round().min(t.width as f64);
            let h = (height as f64 * scale).round().min(t.height as f64);
            return (w as u64, h as u64);
        }
        let w = (width as f64 * scale).round().max(1.0);
        let h = (height as f64 * scale).round().max(1.0);
        (w as u64, h as u64)
    }
}

impl Resize {
    /// Takes `key_value` if it is a resize option.
    pub fn parse_item(
        &mut self,
        key: &str,
        value: &str,
        max_side: u32,
    ) -> Option<Result<(), OptionError>> {
        let result = match key {
            "w" => side(key, value, max_side).map(|w| self.width = Some(w)),
            "h" => side(key, value, max_side).map(|h| self.height = Some(h)),
            "enlarge" if value == "0" || value == "1" => {
                self.enlarge = value == "1";
                Ok(())
            }
            "enlarge" => {
                Err(OptionError::new(key, format!("{value:?} is not 0 or 1")))
            }
            "dpr" => match value.parse::<u32>() {
                Ok(dpr @ 1..=8)
                    if value.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    self.dpr = Some(dpr);
                    Ok(())
                }
                _ => Err(OptionError::new(
                    key,
                    format!("{value:?} is not a whole ratio from 1 to 8"),
                )),
            },
            "g" => gravity::parse_item(value).map(|g| self.gravity = g),
            "fit" => match Fit::parse(value) {
                Some(fit) => {
                    self.fit = fit;
                    Ok(())
                }
                None => Err(OptionError::new(
                    key,
                    format!(
                        "{value:?} is not one of cover, contain, fill, \
                         inside, outside"
                    ),
                )),
            },
            _ => return None,
        };
        Some(result)
    }

    /// A thumbnail that covers `w` × `h` without cropping: led by the side
    /// that scales most, the other left free.
    fn cover_without_crop(
        &self,
        w: i32,
        h: i32,
        by_width: bool,
        size: Size,
    ) -> Thumbnail {
        Thumbnail {
            width: if by_width { w } else { UNBOUNDED },
            height: if by_width { UNBOUNDED } else { h },
            size,
            crop: Crop::None,
        }
    }

    /// The same options with width and height exchanged, for a box that
    /// is turned a quarter after the resize.
    pub fn swapped(&self) -> Resize {
        Resize { width: self.height, height: self.width, ..*self }
    }

    /// The box in device pixels: `w_` and `h_` times `dpr_`.
    pub fn device_box(&self) -> (Option<u32>, Option<u32>) {
        let dpr = self.dpr.unwrap_or(1);
        (self.width.map(|w| w * dpr), self.height.map(|h| h * dpr))
    }

    /// Checks the box in device pixels against the largest side allowed.
    pub fn check(&self, max_side: u32) -> Result<(), OptionError> {
        let (w, h) = self.device_box();
        match w.max(h) {
            Some(side) if side > max_side => Err(OptionError::new(
                "dpr",
                format!("the box times dpr is {side} pixels, over {max_side}"),
            )),
            _ => Ok(()),
        }
    }

    /// Plans the resize of an original that is `width` × `height` when
    /// shown upright.
    pub fn plan(&self, width: u32, height: u32) -> Plan {
        let (src_w, src_h) = (width.max(1) as f64, height.max(1) as f64);
        let (width_px, height_px) = self.device_box();
        let box_w = width_px.map(|w| w as f64);
        let box_h = height_px.map(|h| h as f64);

        let both = match (width_px, height_px) {
            (Some(w), Some(h)) => Some((w as i32, h as i32)),
            _ => None,
        };
        // Enlarging needs a box: without one the original keeps its size.
        let enlarge =
            self.enlarge && (width_px.is_some() || height_px.is_some());
        let size = if enlarge { Size::Both } else { Size::Down };
        // Without enlarge_1, no side grows past the original's.
        let cap = if enlarge { f64::INFINITY } else { 1.0 };
        let bound = |side: Option<u32>| side.map_or(UNBOUNDED, |s| s as i32);
        let inside = Thumbnail {
            width: bound(width_px),
            height: bound(height_px),
            size,
            crop: Crop::None,
        };
        // The factor each side would be scaled by; the smaller one fits
        // inside the box, the larger one covers it.
        let scale_w = box_w.map(|w| w / src_w);
        let scale_h = box_h.map(|h| h / src_h);
        let fit_scale = [scale_w, scale_h]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min)
            .min(cap);
        let fit_scale = if fit_scale.is_finite() { fit_scale } else { 1.0 };
        let cover_scale =
            scale_w.unwrap_or(0.0).max(scale_h.unwrap_or(0.0)).min(cap);

        let Some((w, h)) = both else {
            return Plan {
                thumbnail: inside,
                canvas: None,
                window: None,
                shrink: 1.0 / fit_scale,
            };
        };
        match self.fit {
            Fit::Inside => Plan {
                thumbnail: inside,
                canvas: None,
                window: None,
                shrink: 1.0 / fit_scale,
            },
            Fit::Contain => Plan {
                thumbnail: inside,
                canvas: Some((w, h)),
                window: None,
                shrink: 1.0 / fit_scale,
            },
            Fit::Cover => {
                let crop = match self.gravity {
                    Gravity::Centre => Crop::Centre,
                    Gravity::Smart => Crop::Attention,
                    Gravity::Entropy => Crop::Entropy,
                    // Resized to cover the box, then cut by the gravity.
                    gravity @ (Gravity::Edge { .. }
                    | Gravity::Focal { .. }) => {
                        let outside = self.cover_without_crop(
                            w,
                            h,
                            scale_w >= scale_h,
                            size,
                        );
                        return Plan {
                            thumbnail: outside,
                            canvas: None,
                            window: Some((w, h, gravity)),
                            shrink: 1.0 / cover_scale,
                        };
                    }
                };
                Plan {
                    thumbnail: Thumbnail { width: w, height: h, size, crop },
                    canvas: None,
                    window: None,
                    shrink: 1.0 / cover_scale,
                }
            }
            Fit::Outside => {
                // Scale by the larger factor, led by the side it comes from,
                // the other side left free.
                let by_width = scale_w >= scale_h;
                let thumbnail = self.cover_without_crop(w, h, by_width, size);
                Plan {
                    thumbnail,
                    canvas: None,
                    window: None,
                    shrink: 1.0 / cover_scale,
                }
            }
            Fit::Fill => {
                // Never enlarge: a box beyond the original is scaled down,
                // keeping its shape, until it fits the original.
                let clamp = if self.enlarge {
                    1.0
                } else {
                    (src_w / w as f64).min(src_h / h as f64).min(1.0)
                };
                let w = ((w as f64 * clamp).round() as i32).max(1);
                let h = ((h as f64 * clamp).round() as i32).max(1);
                let least = (w as f64 / src_w).max(h as f64 / src_h);
                Plan {
                    thumbnail: Thumbnail {
                        width: w,
                        height: h,
                        size: Size::Force,
                        crop: Crop::None,
                    },
                    canvas: None,
                    window: None,
                    shrink: 1.0 / least,
                }
            }
        }
    }
}

/// A width or height: digits only, no leading zero (one spelling per
/// number, so one file per derivative), 1 to `max_side`.
fn side(key: &str, value: &str, max_side: u32) -> Result<u32, OptionError> {
    let leading_zero = value.len() > 1 && value.starts_with('0');
    let number = if (1..=9).contains(&value.len())
        && !leading_zero
        && value.bytes().all(|b| b.is_ascii_digit())
    {
        value.parse::<u32>().ok()
    } else {
        None
    };
    match number {
        Some(n) if (1..=max_side).contains(&n) => Ok(n),
        Some(n) => Err(OptionError::new(
            key,
            format!("{n} is not between 1 and {max_side}"),
        )),
        None => Err(OptionError::new(
            key,
            format!("{value:?} is not a whole number of pixels"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resize(w: Option<u32>, h: Option<u32>, fit: Fit) -> Resize {
        Resize { width: w, height: h, fit, ..Resize::default() }
    }

    #[test]
    fn width_alone_leaves_the_height_free() {
        let plan = resize(Some(300), None, Fit::Inside).plan(3000, 2000);
        assert_eq!(plan.thumbnail.width, 300);
        assert_eq!(plan.thumbnail.height, UNBOUNDED);
        assert_eq!(plan.thumbnail.size, Size::Down);
        assert!((plan.shrink - 10.0).abs() < 1e-9);
    }

    #[test]
    fn cover_crops_to_the_box() {
        let plan = resize(Some(300), Some(300), Fit::Cover).plan(3000, 2000);
        assert_eq!(plan.thumbnail.crop, Crop::Centre);
        assert_eq!((plan.thumbnail.width, plan.thumbnail.height), (300, 300));
        // Covering 300x300 from 3000x2000 scales by 300/2000.
        assert!((plan.shrink - 2000.0 / 300.0).abs() < 1e-9);
    }

    #[test]
    fn contain_fits_inside_then_pads() {
        let plan = resize(Some(300), Some(100), Fit::Contain).plan(3000, 2000);
        assert_eq!(plan.canvas, Some((300, 100)));
        assert_eq!(plan.thumbnail.crop, Crop::None);
    }

    #[test]
    fn outside_is_led_by_the_side_that_scales_least() {
        let plan = resize(Some(300), Some(300), Fit::Outside).plan(3000, 2000);
        assert_eq!(plan.thumbnail.height, 300);
        assert_eq!(plan.thumbnail.width, UNBOUNDED);
    }

    #[test]
    fn the_output_size_is_known_before_decoding() {
        let of = |w, h, fit| {
            resize(w, h, fit).plan(3000, 2000).output_size(3000, 2000)
        };
        assert_eq!(of(Some(300), None, Fit::Inside), (300, 200));
        assert_eq!(of(Some(300), Some(300), Fit::Cover), (300, 300));
        assert_eq!(of(Some(300), Some(300), Fit::Contain), (300, 300));
        assert_eq!(of(Some(300), Some(300), Fit::Outside), (450, 300));
        assert_eq!(of(None, None, Fit::Inside), (3000, 2000));
    }

    #[test]
    fn enlarge_lets_a_small_original_grow_to_the_box() {
        let small =
            Resize { enlarge: true, ..resize(Some(300), None, Fit::Inside) };
        let plan = small.plan(100, 50);
        assert_eq!(plan.thumbnail.size, Size::Both);
        assert_eq!(plan.output_size(100, 50), (300, 150));
        let stays = resize(Some(300), None, Fit::Inside).plan(100, 50);
        assert_eq!(stays.output_size(100, 50), (100, 50), "not without it");
        let fill = Resize {
            enlarge: true,
            ..resize(Some(200), Some(100), Fit::Fill)
        };
        assert_eq!(fill.plan(100, 100).output_size(100, 100), (200, 100));
    }

    #[test]
    fn enlarge_without_a_box_keeps_the_original_size() {
        let none = Resize { enlarge: true, ..Resize::default() };
        let plan = none.plan(100, 50);
        assert_eq!(plan.thumbnail.size, Size::Down);
        assert_eq!(plan.output_size(100, 50), (100, 50));
    }

    #[test]
    fn dpr_multiplies_the_box_within_the_limit() {
        let retina = Resize {
            dpr: Some(2),
            ..resize(Some(300), Some(200), Fit::Cover)
        };
        assert_eq!(
            retina.plan(3000, 2000).output_size(3000, 2000),
            (600, 400)
        );
        assert!(retina.check(4096).is_ok());
        let huge =
            Resize { dpr: Some(8), ..resize(Some(4000), None, Fit::Inside) };
        let err = huge.check(4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dpr: the box times dpr is 32000 pixels, over 4096"
        );
        let mut r = Resize::default();
        assert!(r.parse_item("dpr", "9", 4096).unwrap().is_err());
        assert!(r.parse_item("dpr", "1.5", 4096).unwrap().is_err());
        assert!(r.parse_item("enlarge", "yes", 4096).unwrap().is_err());
    }

    #[test]
    fn fill_never_enlarges() {
        let plan = resize(Some(200), Some(100), Fit::Fill).plan(100, 100);
        assert_eq!((plan.thumbnail.width, plan.thumbnail.height), (100, 50));
        assert_eq!(plan.thumbnail.size, Size::Force);
    }

    #[test]
    fn sides_are_whole_numbers_within_the_limit() {
        let mut r = Resize::default();
        assert!(r.parse_item("w", "300", 4096).unwrap().is_ok());
        assert_eq!(r.width, Some(300));
        for bad in [
            "0",
            "-100",
            "abc",
            "",
            "NaN",
            "1e3",
            "4097",
            "9999999999",
            "0300",
        ] {
            let err = r.parse_item("w", bad, 4096).unwrap().unwrap_err();
            assert!(err.to_string().starts_with("w: "), "{err}");
        }
    }

    #[test]
    fn other_keys_are_not_ours() {
        assert!(Resize::default().parse_item("q", "80", 4096).is_none());
    }
}
