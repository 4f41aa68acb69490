//! `r_`, `flip_`, `grey_`, `blur_`, `sharpen_` and `bg_`: what is done to
//! the picture once it is resized.
//!
//! Rotation and flips come after the EXIF orientation has been applied,
//! so they turn the picture as people see it. The box of `w_` and `h_`
//! describes the result: with `r_90` a 300-wide box gives a 300-wide
//! derivative, the picture having been fitted to the turned box first.
//! Blur and sharpen take a Gaussian sigma in pixels of the derivative.
//! `bg_` is the colour transparency is flattened onto for formats without
//! alpha, and the padding of `fit_contain` (white when not given).

use super::OptionError;
use crate::vips::{self, Image};

/// A turn clockwise, in quarters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Quarter,
    Half,
    ThreeQuarters,
}

/// A mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flip {
    Horizontal,
    Vertical,
    Both,
}

/// The adjustments of one URL. Sigmas are kept in tenths so the options
/// stay comparable and hashable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adjust {
    pub turn: Option<Turn>,
    pub flip: Option<Flip>,
    pub grey: bool,
    pub blur_tenths: Option<u16>,
    pub sharpen_tenths: Option<u16>,
    pub background: Option<[u8; 3]>,
}

impl Adjust {
    /// Takes `key_value` if it is an adjustment.
    pub fn parse_item(
        &mut self,
        key: &str,
        value: &str,
    ) -> Option<Result<(), OptionError>> {
        let bad = |reason: &str| {
            Err(OptionError::new(key, format!("{value:?} {reason}")))
        };
        let result = match key {
            "r" => match value {
                "0" => set(&mut self.turn, None),
                "90" => set(&mut self.turn, Some(Turn::Quarter)),
                "180" => set(&mut self.turn, Some(Turn::Half)),
                "270" => set(&mut self.turn, Some(Turn::ThreeQuarters)),
                _ => bad("is not 0, 90, 180 or 270"),
            },
            "flip" => match value {
                "h" => set(&mut self.flip, Some(Flip::Horizontal)),
                "v" => set(&mut self.flip, Some(Flip::Vertical)),
                "hv" => set(&mut self.flip, Some(Flip::Both)),
                _ => bad("is not h, v or hv"),
            },
            "grey" => match value {
                "0" | "1" => set(&mut self.grey, value == "1"),
                _ => bad("is not 0 or 1"),
            },
            "blur" => match tenths(value, 3, 1000) {
                Some(t) => set(&mut self.blur_tenths, Some(t)),
                None => bad(
                    "is not a sigma from 0.3 to 100 in its one spelling: at \
                     most one decimal, no leading or trailing zero (2.5, 100)",
                ),
            },
            "sharpen" => match tenths(value, 5, 100) {
                Some(t) => set(&mut self.sharpen_tenths, Some(t)),
                None => bad(
                    "is not a sigma from 0.5 to 10 in its one spelling: at \
                     most one decimal, no leading or trailing zero (0.5, 2)",
                ),
            },
            "bg" => match hex_colour(value) {
                Some(rgb) => set(&mut self.background, Some(rgb)),
                None => {
                    bad("is not a colour as six hex digits, such as f0f0f0")
                }
            },
            _ => return None,
        };
        Some(result)
    }

    /// Whether the turn swaps width and height.
    pub fn swaps_sides(&self) -> bool {
        matches!(self.turn, Some(Turn::Quarter | Turn::ThreeQuarters))
    }

    /// The background as libvips wants it.
    pub fn background(&self) -> [f64; 3] {
        let [r, g, b] = self.background.unwrap_or([255, 255, 255]);
        [r as f64, g as f64, b as f64]
    }

    /// Applies the adjustments, in the order of the module's doc.
    pub fn apply(&self, mut image: Image) -> vips::Result<Image> {
        if let Some(turn) = self.turn {
            image = image.rotate(match turn {
                Turn::Quarter => 90,
                Turn::Half => 180,
                Turn::ThreeQuarters => 270,
            })?;
        }
        if let Some(flip) = self.flip {
            let (h, v) = match flip {
                Flip::Horizontal => (true, false),
                Flip::Vertical => (false, true),
                Flip::Both => (true, true),
            };
            image = image.flip(h, v)?;
        }
        if self.grey {
            image = image.to_grey()?;
        }
        if let Some(t) = self.blur_tenths {
            image = image.blur(t as f64 / 10.0)?;
        }
        if let Some(t) = self.sharpen_tenths {
            image = image.sharpen(t as f64 / 10.0)?;
        }
        Ok(image)
    }
}

fn set<T>(slot: &mut T, value: T) -> Result<(), OptionError> {
    *slot = value;
    Ok(())
}

/// A decimal with at most one digit after the point, in tenths, within
/// `min..=max` tenths.
fn tenths(value: &str, min: u16, max: u16) -> Option<u16> {
    let (whole, frac) = value.split_once('.').unwrap_or((value, "0"));
    // One spelling per value: no leading zero, and no ".0".
    if whole.is_empty()
        || (whole.len() > 1 && whole.starts_with('0'))
        || (value.contains('.') && frac == "0")
        || frac.len() != 1
        || !whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        || whole.len() > 4
    {
        return None;
    }
    let tenths = whole.parse::<u16>().ok()? * 10 + frac.parse::<u16>().ok()?;
    (min..=max).contains(&tenths).then_some(tenths)
}

fn hex_colour(value: &str) -> Option<[u8; 3]> {
    if value.len() != 6 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&value[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: &[(&str, &str)]) -> Result<Adjust, OptionError> {
        let mut adjust = Adjust::default();
        for (key, value) in items {
            adjust.parse_item(key, value).expect("an adjustment")?;
        }
        Ok(adjust)
    }

    #[test]
    fn each_adjustment_parses() {
        let adjust = parse(&[
            ("r", "90"),
            ("flip", "hv"),
            ("grey", "1"),
            ("blur", "2.5"),
            ("sharpen", "1"),
            ("bg", "FF8000"),
        ])
        .unwrap();
        assert_eq!(adjust.turn, Some(Turn::Quarter));
        assert!(adjust.swaps_sides());
        assert_eq!(adjust.flip, Some(Flip::Both));
        assert!(adjust.grey);
        assert_eq!(adjust.blur_tenths, Some(25));
        assert_eq!(adjust.sharpen_tenths, Some(10));
        assert_eq!(adjust.background(), [255.0, 128.0, 0.0]);
    }

    #[test]
    fn bad_values_are_refused_with_the_range() {
        for (key, value) in [
            ("r", "45"),
            ("flip", "x"),
            ("grey", "yes"),
            ("blur", "0.2"),
            ("blur", "1.25"),
            ("blur", "-1"),
            ("blur", "01.5"),
            ("blur", "1.0"),
            ("sharpen", "11"),
            ("bg", "fff"),
            ("bg", "gggggg"),
        ] {
            let err = parse(&[(key, value)]).unwrap_err();
            assert!(err.to_string().starts_with(&format!("{key}: ")), "{err}");
        }
    }

    #[test]
    fn a_sigma_in_range_but_spelt_otherwise_is_told_its_spelling() {
        for value in ["100.0", "2.50", "02.5"] {
            let err = parse(&[("blur", value)]).unwrap_err().to_string();
            assert!(err.contains("in its one spelling"), "{err}");
            assert!(err.contains("(2.5, 100)"), "{err}");
        }
    }

    #[test]
    fn other_keys_are_not_ours() {
        assert!(Adjust::default().parse_item("w", "1").is_none());
    }
}
