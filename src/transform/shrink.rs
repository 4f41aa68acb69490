//! The box shrink that images with alpha get before libvips' thumbnail
//! resamples them (step 5a of the pipeline).
//!
//! Only JPEGs shrink in the decoder, so a PNG, WebP or TIFF with alpha
//! reaches the resampler at full size, and libvips 8.14 premultiplies it
//! into float first: for a 3 MP RGBA PNG that pass, 16 bytes a pixel
//! written and read back, was half of the render. This module shrinks such
//! an image by a whole factor first, each output pixel the mean of a
//! block of the original weighted by alpha (so transparent pixels lend no
//! colour), in integers, a row at a time as the decoder delivers them,
//! and gives libvips the shrunk image to finish.
//!
//! The sizes and edges follow `vips_shrink`: each side becomes its length
//! divided by the factor, rounded half up, and a block that runs past the
//! right or bottom edge repeats the last column or row. 16-bit images,
//! and band layouts other than grey and RGB with alpha, are left to
//! libvips' own premultiplied shrink, in float.

use crate::vips::{Image, Result};

/// Shrinks `image`, which has an alpha band, by `factor` in both
/// directions.
pub fn with_alpha(image: Image, factor: i32) -> Result<Image> {
    let bands = image.bands() as usize;
    if !image.is_uchar() || !(bands == 2 || bands == 4) || factor < 2 {
        return image.shrink_with_alpha(factor);
    }
    let (width, height) = (image.width(), image.height());
    let mut blocks = Blocks::new(width as usize, bands, factor as usize);
    let out_height = shrunk(height as usize, factor as usize);
    let mut pixels = Vec::with_capacity(blocks.out_width * out_height * bands);

    // Rows past the last whole block that rounding drops are not read.
    let rows = (out_height * factor as usize).min(height as usize) as i32;
    let mut last = Vec::new();
    image.each_row(rows, |y, row| {
        blocks.add_row(row, &mut pixels);
        if y == rows - 1 {
            last.extend_from_slice(row);
        }
    })?;
    blocks.finish(&last, &mut pixels);
    image.with_pixels(&pixels, blocks.out_width as i32, out_height as i32)
}

/// A side's length after shrinking by `factor`, as `vips_shrink` gives
/// it: rounded half up, at least 1.
fn shrunk(length: usize, factor: usize) -> usize {
    ((2 * length + factor) / (2 * factor)).max(1)
}

/// The sums of one row of blocks, filled a row of pixels at a time.
struct Blocks {
    width: usize,
    bands: usize,
    factor: usize,
    out_width: usize,
    /// Per block: alpha × value for each colour band, then alpha.
    sums: Vec<u64>,
    /// Rows added to the current row of blocks.
    rows: usize,
}

impl Blocks {
    fn new(width: usize, bands: usize, factor: usize) -> Blocks {
        let out_width = shrunk(width, factor);
        Blocks {
            width,
            bands,
            factor,
            out_width,
            sums: vec![0; out_width * bands],
            rows: 0,
        }
    }

    /// Adds one row of `width` pixels; after every `factor` rows, appends
    /// a row of shrunk pixels to `out`.
    fn add_row(&mut self, row: &[u8], out: &mut Vec<u8>) {
        debug_assert_eq!(row.len(), self.width * self.bands);
        match self.bands {
            2 => self.sum_row::<2>(row),
            _ => self.sum_row::<4>(row),
        }
        self.rows += 1;
        if self.rows == self.factor {
            self.emit(out);
        }
    }

    /// Completes a row of blocks that the bottom edge cut short by
    /// repeating `last`, the last row added.
    fn finish(&mut self, last: &[u8], out: &mut Vec<u8>) {
        while self.rows > 0 {
            self.add_row(last, out);
        }
    }

    fn sum_row<const B: usize>(&mut self, row: &[u8]) {
        let factor = self.factor;
        let (pixels, _) = row.as_chunks::<B>();
        let (blocks, _) = self.sums.as_chunks_mut::<B>();
        // Whole blocks first; the pixels lead the zip, so that it takes
        // no block it cannot fill.
        let mut blocks = blocks.iter_mut();
        let whole = pixels.chunks_exact(factor);
        let tail = whole.remainder();
        for (block, sums) in whole.zip(&mut blocks) {
            for pixel in block {
                add_pixel(sums, pixel);
            }
        }
        // The block past the right edge, if any, repeats the last column.
        if let Some(sums) = blocks.next() {
            for pixel in tail {
                add_pixel(sums, pixel);
            }
            let edge = &pixels[pixels.len() - 1];
            for _ in tail.len()..factor {
                add_pixel(sums, edge);
            }
        }
    }

    /// Appends the current row of blocks to `out`, and starts the next.
    fn emit(&mut self, out: &mut Vec<u8>) {
        let (bands, count) = (self.bands, (self.factor * self.factor) as u64);
        for sums in self.sums.chunks_exact_mut(bands) {
            let alpha = sums[bands - 1];
            for &weighted in &sums[..bands - 1] {
                let value = (weighted + alpha / 2).checked_div(alpha);
                out.push(value.unwrap_or(0) as u8);
            }
            out.push(((alpha + count / 2) / count) as u8);
            sums.fill(0);
        }
        self.rows = 0;
    }
}

/// Adds one pixel, alpha last, to a block's sums.
#[inline(always)]
fn add_pixel<const B: usize>(sums: &mut [u64; B], pixel: &[u8; B]) {
    let alpha = u64::from(pixel[B - 1]);
    for band in 0..B - 1 {
        sums[band] += alpha * u64::from(pixel[band]);
    }
    sums[B - 1] += alpha;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shrinks rows of RGBA or grey-alpha pixels given as one slice.
    fn shrink(pixels: &[u8], width: usize, bands: usize, f: usize) -> Vec<u8> {
        let mut blocks = Blocks::new(width, bands, f);
        let mut out = Vec::new();
        let height = pixels.len() / (width * bands);
        let rows = (shrunk(height, f) * f).min(height);
        let rows: Vec<&[u8]> =
            pixels.chunks_exact(width * bands).take(rows).collect();
        for row in &rows {
            blocks.add_row(row, &mut out);
        }
        blocks.finish(rows[rows.len() - 1], &mut out);
        out
    }

    #[test]
    fn sizes_round_half_up_as_vips_shrink_does() {
        assert_eq!(shrunk(2048, 3), 683);
        assert_eq!(shrunk(2050, 3), 683);
        assert_eq!(shrunk(10, 4), 3);
        assert_eq!(shrunk(9, 4), 2);
        assert_eq!(shrunk(1, 4), 1);
    }

    #[test]
    fn opaque_blocks_are_their_mean() {
        let pixels = [
            [10, 20, 30, 255],
            [20, 30, 40, 255],
            [30, 40, 50, 255],
            [40, 50, 62, 255],
        ]
        .concat();
        // Blue: 182 / 4 = 45.5, rounded half up.
        assert_eq!(shrink(&pixels, 2, 4, 2), [25, 35, 46, 255]);
    }

    #[test]
    fn transparent_pixels_lend_no_colour() {
        // One opaque red pixel among three transparent black ones: the
        // block is red at a quarter alpha, not a dark red.
        let pixels =
            [[200, 30, 30, 255], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
                .concat();
        assert_eq!(shrink(&pixels, 2, 4, 2), [200, 30, 30, 64]);
    }

    #[test]
    fn a_wholly_transparent_block_is_transparent_black() {
        let pixels = [[90, 0, 0, 0]; 4].concat();
        assert_eq!(shrink(&pixels, 2, 4, 2), [0, 0, 0, 0]);
    }

    #[test]
    fn grey_with_alpha_weights_by_alpha() {
        let pixels = [[100, 255], [200, 85], [0, 0], [0, 0]].concat();
        // (100·255 + 200·85) / 340 = 125; alpha 340 / 4 = 85.
        assert_eq!(shrink(&pixels, 2, 2, 2), [125, 85]);
    }

    #[test]
    fn blocks_past_the_edges_repeat_the_last_column_and_row() {
        // 3 × 3 grey-alpha by 2: 2 × 2 blocks, the last column and row
        // of blocks padded with copies of the edge.
        let row =
            |a: u8, b: u8, c: u8| [[a, 255], [b, 255], [c, 255]].concat();
        let pixels =
            [row(0, 0, 100), row(0, 0, 100), row(40, 40, 200)].concat();
        let out = shrink(&pixels, 3, 2, 2);
        assert_eq!(out, [0, 255, 100, 255, 40, 255, 200, 255]);
    }

    #[test]
    fn rows_that_rounding_drops_are_not_used() {
        // 5 rows by 4: one row of blocks, from the first four rows.
        let pixels = [[[10, 255]; 4].concat(), [[250, 255]; 4].concat()];
        let image = [&pixels[0][..]; 4]
            .into_iter()
            .chain([&pixels[1][..]])
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(shrink(&image, 4, 2, 4), [10, 255]);
    }
}
