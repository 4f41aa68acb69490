//! `crop_`: a rectangle of the original, kept before anything else.
//!
//! `crop_X-Y-W-H` names the rectangle in pixels of the upright original
//! (after EXIF orientation), from its top left corner. The rest of the
//! URL then applies to that rectangle as if it were the original. A
//! rectangle reaching past the edges is cut at them; one wholly outside
//! is refused.

use super::OptionError;

/// A rectangle in pixels of the upright original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub fn parse(value: &str) -> Result<Rect, OptionError> {
        let numbers: Vec<Option<u32>> = value
            .split('-')
            .map(|n| {
                let plain = !n.is_empty()
                    && n.len() <= 6
                    && !(n.len() > 1 && n.starts_with('0'))
                    && n.bytes().all(|b| b.is_ascii_digit());
                plain.then(|| n.parse().ok()).flatten()
            })
            .collect();
        match numbers.as_slice() {
            [Some(x), Some(y), Some(width), Some(height)]
                if *width > 0 && *height > 0 =>
            {
                Ok(Rect { x: *x, y: *y, width: *width, height: *height })
            }
            _ => Err(OptionError::new(
                "crop",
                format!(
                    "{value:?} is not X-Y-W-H in pixels, such as 10-20-300-200"
                ),
            )),
        }
    }

    /// The part of the rectangle inside an original of `width` ×
    /// `height`, or why there is none.
    pub fn within(
        &self,
        width: u32,
        height: u32,
    ) -> Result<Rect, OptionError> {
        let right = (self.x.saturating_add(self.width)).min(width);
        let bottom = (self.y.saturating_add(self.height)).min(height);
        if self.x >= width
            || self.y >= height
            || right <= self.x
            || bottom <= self.y
        {
            return Err(OptionError::new(
                "crop",
                format!(
                    "the rectangle lies outside the {width}x{height} original"
                ),
            ));
        }
        Ok(Rect {
            x: self.x,
            y: self.y,
            width: right - self.x,
            height: bottom - self.y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rectangle_parses_and_is_cut_at_the_edges() {
        let rect = Rect::parse("60-0-40-40").unwrap();
        assert_eq!(
            rect.within(64, 64).unwrap(),
            Rect { x: 60, y: 0, width: 4, height: 40 },
            "case B22j: clamped to 4x40"
        );
        assert!(Rect::parse("64-0-10-10").unwrap().within(64, 64).is_err());
    }

    #[test]
    fn bad_rectangles_are_refused() {
        for bad in
            ["1-2-3", "1-2-3-0", "a-b-c-d", "1-2-3-4-5", "-1-2-3", "01-2-3-4"]
        {
            assert!(Rect::parse(bad).is_err(), "{bad}");
        }
    }
}
