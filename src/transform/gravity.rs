//! `g_`: which part of the picture `fit_cover` keeps when it crops.
//!
//! Nine positions (`c`, the default, and `n`, `ne`, `e`, `se`, `s`, `sw`,
//! `w`, `nw`), `smart` (libvips' attention: skin, saturation, edges),
//! `entropy` (the busiest part), or a focal point in percent of the upright
//! picture (`fp-30-60`: 30 % from the left, 60 % from the top), kept as
//! near the middle of the crop as the edges allow.

use super::OptionError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gravity {
    #[default]
    Centre,
    /// A position: how far across and down the overflow is cut, in
    /// halves (0 = keep the left or top edge, 2 = the right or bottom).
    Edge {
        x: u8,
        y: u8,
    },
    Smart,
    Entropy,
    /// A point to keep in view, in percent across and down.
    Focal {
        x: u8,
        y: u8,
    },
}

impl Gravity {
    pub fn parse(value: &str) -> Result<Gravity, String> {
        let edge = |x, y| Ok(Gravity::Edge { x, y });
        match value {
            "c" => Ok(Gravity::Centre),
            "n" => edge(1, 0),
            "ne" => edge(2, 0),
            "e" => edge(2, 1),
            "se" => edge(2, 2),
            "s" => edge(1, 2),
            "sw" => edge(0, 2),
            "w" => edge(0, 1),
            "nw" => edge(0, 0),
            "smart" => Ok(Gravity::Smart),
            "entropy" => Ok(Gravity::Entropy),
            _ => {
                let focal = value.strip_prefix("fp-").and_then(|rest| {
                    let (x, y) = rest.split_once('-')?;
                    let percent = |s: &str| {
                        let leading_zero = s.len() > 1 && s.starts_with('0');
                        (!s.is_empty() && !leading_zero).then_some(())?;
                        s.bytes()
                            .all(|b| b.is_ascii_digit())
                            .then(|| s.parse::<u8>().ok())
                            .flatten()
                            .filter(|p| *p <= 100)
                    };
                    Some(Gravity::Focal { x: percent(x)?, y: percent(y)? })
                });
                focal.ok_or_else(|| {
                    format!(
                        "{value:?} is not one of c, n, ne, e, se, s, sw, w, nw, \
                         smart, entropy, fp-<x%>-<y%>"
                    )
                })
            }
        }
    }

    /// Where a `width` × `height` window starts in an image of
    /// `full_w` × `full_h` that covers it.
    pub fn window(
        &self,
        full_w: i32,
        full_h: i32,
        width: i32,
        height: i32,
    ) -> (i32, i32) {
        let (spare_w, spare_h) =
            ((full_w - width).max(0), (full_h - height).max(0));
        match *self {
            Gravity::Edge { x, y } => {
                (spare_w * x as i32 / 2, spare_h * y as i32 / 2)
            }
            Gravity::Focal { x, y } => {
                let centre =
                    |full: i32, size: i32, percent: u8, spare: i32| {
                        (full * percent as i32 / 100 - size / 2)
                            .clamp(0, spare)
                    };
                (
                    centre(full_w, width, x, spare_w),
                    centre(full_h, height, y, spare_h),
                )
            }
            _ => (spare_w / 2, spare_h / 2),
        }
    }
}

/// Takes `g_` for the resize options.
pub fn parse_item(value: &str) -> Result<Gravity, OptionError> {
    Gravity::parse(value).map_err(|reason| OptionError::new("g", reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_cut_the_overflow_from_the_other_side() {
        // A 400x300 image, a 300x300 window.
        let at =
            |g: &str| Gravity::parse(g).unwrap().window(400, 300, 300, 300);
        assert_eq!(at("w"), (0, 0));
        assert_eq!(at("c"), (50, 0));
        assert_eq!(at("e"), (100, 0));
        assert_eq!(at("se"), (100, 0));
    }

    #[test]
    fn a_focal_point_is_centred_as_far_as_the_edges_allow() {
        let at =
            |g: &str| Gravity::parse(g).unwrap().window(1000, 500, 200, 500);
        assert_eq!(at("fp-50-50"), (400, 0));
        assert_eq!(at("fp-5-50"), (0, 0), "stops at the left edge");
        assert_eq!(at("fp-99-50"), (800, 0), "stops at the right edge");
    }

    #[test]
    fn bad_gravities_are_refused() {
        for bad in ["north", "fp-101-5", "fp-5", "fp-a-b", "", "fp-050-50"] {
            assert!(Gravity::parse(bad).is_err(), "{bad}");
        }
    }
}
