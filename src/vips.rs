//! The only module that calls libvips.
//!
//! The `libvips` crate's generated wrappers pass every optional argument
//! that the newest libvips knows (`input-profile`, `keep`, …), and libvips
//! 8.14, the version Debian 12 ships, refuses names it does not know. So
//! this module calls the C functions of the crate's `bindings` directly,
//! naming only the options we set, and wraps the few operations the
//! pipeline needs in safe functions. Every call that fails reads and
//! clears libvips' error buffer, so one request's error text never leaks
//! into the next.
//!
//! libvips must be started with [`start`] in each worker after `fork`, never
//! in the master: it starts threads, and threads do not survive `fork`.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr::{NonNull, null, null_mut};

use libvips::bindings as ffi;

/// A libvips failure, with the text libvips gave for it.
#[derive(Debug, Clone)]
pub struct VipsError {
    pub operation: &'static str,
    pub message: String,
}

impl std::fmt::Display for VipsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl std::error::Error for VipsError {}

pub type Result<T> = std::result::Result<T, VipsError>;

/// Takes libvips' error buffer, clears it, and keeps its first line: the
/// rest is usually the same complaint repeated by each layer.
fn take_error(operation: &'static str) -> VipsError {
    // SAFETY: vips_error_buffer returns a NUL-terminated string owned by
    // libvips, valid until the next vips_error_clear, which we call after
    // copying it.
    let text = unsafe {
        let text = CStr::from_ptr(ffi::vips_error_buffer())
            .to_string_lossy()
            .into_owned();
        ffi::vips_error_clear();
        text
    };
    let message = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("the decoder gave up without a reason")
        .to_string();
    VipsError { operation, message }
}

/// Forgets any error text libvips holds, so a request never reports
/// another's: called before each render.
pub fn clear_errors() {
    // SAFETY: a plain call; the buffer is libvips' own.
    unsafe { ffi::vips_error_clear() }
}

/// Rows [`Image::each_row`] decodes at a time: a few hundred kilobytes of
/// a wide image.
const ROWS_PER_READ: i32 = 64;
/// Pixel buffers up to this size come from the heap and are reused.
const KEEP_BUFFERS_UNDER: c_int = 32 << 20;
/// Free memory the heap keeps for the next render before giving it back.
const KEEP_FREE: c_int = 64 << 20;
/// Heaps (glibc arenas) the process's threads share.
const ARENAS: c_int = 2;

/// Starts libvips in this process: one thread per operation, no operation
/// cache (each request is a new image, a cache only holds memory), and the
/// operations libvips marks untrusted (ImageMagick, PDF, …) blocked.
///
/// It also sets how the C allocator treats large blocks. A render
/// allocates and frees pixel buffers of megabytes; by default glibc maps
/// many of them afresh from the kernel and unmaps them when freed, so
/// every render pays page faults and zeroing for each page again (a fifth
/// of the CPU time of a 3 MP PNG). Kept in the heap, they are reused: a
/// worker's resident memory stays near its largest render (up to
/// `KEEP_FREE` more) instead of falling back after each one. And the
/// threads of a worker (libvips', the encoders', the finishers) share two
/// heaps instead of taking one each, every one keeping its own free
/// memory: a worker's RSS after 10,000 misses went from 41-44 MB to 36.
pub fn start(concurrency: i32) -> Result<()> {
    let name = CString::new("imgworker").expect("no NUL in a literal");
    // SAFETY: plain calls into libvips with valid arguments; vips_init is
    // safe to call once per process, which the worker guarantees. mallopt
    // only changes thresholds, before any pixel buffer exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, KEEP_BUFFERS_UNDER);
        libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREE);
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        if ffi::vips_init(name.as_ptr()) != 0 {
            return Err(take_error("vips_init"));
        }
        ffi::vips_concurrency_set(concurrency);
        ffi::vips_cache_set_max(0);
        ffi::vips_cache_set_max_mem(0);
        ffi::vips_cache_set_max_files(0);
        ffi::vips_block_untrusted_set(1);
        // libvips reports decoder complaints through GLib's log, which
        // would print them as multi-line blocks on stderr; route them into
        // ours, one line each. The request's own log line carries the
        // error that matters.
        let domain = cstring("VIPS");
        ffi::g_log_set_handler(
            domain.as_ptr(),
            ffi::GLogLevelFlags_G_LOG_LEVEL_WARNING
                | ffi::GLogLevelFlags_G_LOG_LEVEL_MESSAGE
                | ffi::GLogLevelFlags_G_LOG_LEVEL_INFO,
            Some(on_glib_log),
            null_mut(),
        );
    }
    Ok(())
}

unsafe extern "C" fn on_glib_log(
    _domain: *const c_char,
    _level: ffi::GLogLevelFlags,
    message: *const c_char,
    _data: *mut c_void,
) {
    if message.is_null() {
        return;
    }
    // SAFETY: GLib passes a NUL-terminated message valid for this call.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    log::debug!("libvips said {:?}", text.trim());
}

/// Lets an operation that [`start`] blocked run after all: the SVG
/// loader, when `input_formats` lists svg. `name` is a libvips class
/// name such as `VipsForeignLoadSvg`; its subclasses follow it.
pub fn allow_operation(name: &str) {
    let name = cstring(name);
    // SAFETY: a NUL-terminated class name; unknown names are ignored.
    unsafe { ffi::vips_operation_block_set(name.as_ptr(), 0) }
}

/// The libvips version, for the start-up log line.
pub fn version() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::vips_version_string()) }
        .to_string_lossy()
        .into_owned()
}

/// The name of the libvips loader that recognises these bytes, such as
/// `VipsForeignLoadJpegBuffer`, or `None` when no loader does.
pub fn find_loader(bytes: &[u8]) -> Option<String> {
    // SAFETY: the pointer and length describe a live slice; the result is
    // a static string or NULL.
    let name = unsafe {
        ffi::vips_foreign_find_load_buffer(
            bytes.as_ptr() as *const c_void,
            bytes.len() as ffi::size_t,
        )
    };
    // A miss also leaves "not a known format" in the error buffer.
    if name.is_null() {
        take_error("find_load_buffer");
        return None;
    }
    // SAFETY: non-NULL, NUL-terminated, static.
    Some(unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned())
}

/// One libvips image. Dropping it drops our reference.
pub struct Image(NonNull<ffi::VipsImage>);

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: we own exactly one reference to this object.
        unsafe { ffi::g_object_unref(self.0.as_ptr() as *mut c_void) }
    }
}

/// Wraps the out-parameter of a libvips operation.
fn wrap(
    status: c_int,
    out: *mut ffi::VipsImage,
    op: &'static str,
) -> Result<Image> {
    match NonNull::new(out) {
        Some(image) if status == 0 => Ok(Image(image)),
        _ => Err(take_error(op)),
    }
}

fn cstring(text: &str) -> CString {
    CString::new(text).unwrap_or_default()
}

/// How [`Image::thumbnail`] treats the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Fit inside the box, shrinking only.
    Down,
    /// Fit inside the box, shrinking or enlarging.
    Both,
    /// Exactly the box, ignoring the aspect ratio.
    Force,
}

/// Whether [`Image::thumbnail`] crops to the box, and what it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    None,
    Centre,
    /// libvips' attention strategy: skin tones, saturation, edges.
    Attention,
    /// The part with the most entropy.
    Entropy,
}

/// Options of [`Image::thumbnail`]: the box, and whether to crop to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thumbnail {
    pub width: i32,
    pub height: i32,
    pub size: Size,
    pub crop: Crop,
}

impl Image {
    /// Opens an image from bytes in memory. Only the header is read here;
    /// pixels are decoded when something pulls them. `options` are loader
    /// options in libvips' `name=value,…` form (`shrink=4,fail_on=warning`).
    ///
    /// The bytes must outlive the image and every image made from it.
    pub fn load(bytes: &[u8], options: &str) -> Result<Image> {
        Image::load_with(
            bytes,
            options,
            ffi::VipsAccess_VIPS_ACCESS_SEQUENTIAL,
        )
    }

    /// As [`Image::load`], for pipelines that read the pixels out of order
    /// (turning upside down before a crop): random access.
    pub fn load_random(bytes: &[u8], options: &str) -> Result<Image> {
        Image::load_with(bytes, options, ffi::VipsAccess_VIPS_ACCESS_RANDOM)
    }

    fn load_with(
        bytes: &[u8],
        options: &str,
        access_mode: ffi::VipsAccess,
    ) -> Result<Image> {
        let options = cstring(options);
        let access = cstring("access");
        // SAFETY: valid slice, NUL-terminated strings, NULL-terminated
        // varargs of (name, int) pairs.
        let image = unsafe {
            ffi::vips_image_new_from_buffer(
                bytes.as_ptr() as *const c_void,
                bytes.len() as ffi::size_t,
                options.as_ptr(),
                access.as_ptr(),
                access_mode as c_int,
                null::<c_char>(),
            )
        };
        wrap(if image.is_null() { -1 } else { 0 }, image, "load")
    }

    fn ptr(&self) -> *mut ffi::VipsImage {
        self.0.as_ptr()
    }

    pub fn width(&self) -> i32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_width(self.ptr()) }
    }

    pub fn height(&self) -> i32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_height(self.ptr()) }
    }

    pub fn bands(&self) -> i32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_bands(self.ptr()) }
    }

    pub fn has_alpha(&self) -> bool {
        // SAFETY: live image.
        unsafe { ffi::vips_image_hasalpha(self.ptr()) != 0 }
    }

    /// The EXIF orientation, 1 to 8; 1 when the image has none.
    pub fn orientation(&self) -> i32 {
        let name = cstring("orientation");
        let mut value: c_int = 1;
        // SAFETY: live image, valid out pointer. A missing field is not an
        // error for us, so the error buffer it fills is cleared.
        let status = unsafe {
            let known = ffi::vips_image_get_typeof(self.ptr(), name.as_ptr());
            if known == 0 {
                return 1;
            }
            ffi::vips_image_get_int(self.ptr(), name.as_ptr(), &mut value)
        };
        if status != 0 {
            take_error("orientation");
            return 1;
        }
        if (1..=8).contains(&value) { value } else { 1 }
    }

    /// Whether the image carries an ICC profile of its own.
    fn has_icc_profile(&self) -> bool {
        let name = cstring("icc-profile-data");
        // SAFETY: live image, NUL-terminated name.
        unsafe { ffi::vips_image_get_typeof(self.ptr(), name.as_ptr()) != 0 }
    }

    /// libvips' interpretation of the bands (sRGB, B_W, CMYK, RGB16, …).
    fn interpretation(&self) -> ffi::VipsInterpretation {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_interpretation(self.ptr()) }
    }

    /// Resizes with `vips_thumbnail_image`: EXIF orientation applied, an
    /// embedded ICC profile (or, for CMYK, the fallback profile)
    /// converted to sRGB.
    pub fn thumbnail(&self, opts: Thumbnail) -> Result<Image> {
        let size = match opts.size {
            Size::Down => ffi::VipsSize_VIPS_SIZE_DOWN,
            Size::Both => ffi::VipsSize_VIPS_SIZE_BOTH,
            Size::Force => ffi::VipsSize_VIPS_SIZE_FORCE,
        };
        let crop = match opts.crop {
            Crop::None => ffi::VipsInteresting_VIPS_INTERESTING_NONE,
            Crop::Centre => ffi::VipsInteresting_VIPS_INTERESTING_CENTRE,
            Crop::Attention => ffi::VipsInteresting_VIPS_INTERESTING_ATTENTION,
            Crop::Entropy => ffi::VipsInteresting_VIPS_INTERESTING_ENTROPY,
        };
        let (n_height, n_size, n_crop) =
            (cstring("height"), cstring("size"), cstring("crop"));
        let mut out = null_mut();
        // Only an embedded profile is converted: libvips 8.14, asked to
        // export an untagged image to sRGB, shifts its colours (pure blue
        // gains red), and untagged images are sRGB already. CMYK without
        // a profile is converted with the fallback profile either way.
        let (n_export, srgb) = (cstring("export-profile"), cstring("srgb"));
        let (last_name, last_value) = if self.has_icc_profile() {
            (n_export.as_ptr(), srgb.as_ptr())
        } else {
            (null::<c_char>(), null::<c_char>())
        };
        // SAFETY: live image, NULL-terminated varargs of (name, value);
        // when there is no profile the list ends at `last_name`.
        let status = unsafe {
            ffi::vips_thumbnail_image(
                self.ptr(),
                &mut out,
                opts.width as c_int,
                n_height.as_ptr(),
                opts.height as c_int,
                n_size.as_ptr(),
                size as c_int,
                n_crop.as_ptr(),
                crop as c_int,
                last_name,
                last_value,
                null::<c_char>(),
            )
        };
        wrap(status, out, "thumbnail")
    }

    /// Brings any colour space to 8-bit sRGB, or 8-bit greyscale when the
    /// image is greyscale, so every encoder gets what browsers expect.
    pub fn to_srgb(self) -> Result<Image> {
        use ffi::VipsInterpretation_VIPS_INTERPRETATION_B_W as B_W;
        use ffi::VipsInterpretation_VIPS_INTERPRETATION_GREY16 as GREY16;
        use ffi::VipsInterpretation_VIPS_INTERPRETATION_sRGB as SRGB;

        let current = self.interpretation();
        // SAFETY: live image.
        let format = unsafe { ffi::vips_image_get_format(self.ptr()) };
        let uchar = format == ffi::VipsBandFormat_VIPS_FORMAT_UCHAR;
        let target =
            if current == B_W || current == GREY16 { B_W } else { SRGB };
        if current == target && uchar {
            return Ok(self);
        }
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_colourspace(
                self.ptr(),
                &mut out,
                target,
                null::<c_char>(),
            )
        };
        wrap(status, out, "colourspace")?.cast_uchar()
    }

    /// Shrinks by a whole `factor` in both directions, each output pixel
    /// the mean of a `factor` × `factor` block weighted by its alpha
    /// (premultiplied, so transparent pixels lend no colour), back in the
    /// image's own band format. See `vips_shrink` and `vips_premultiply`.
    pub fn shrink_with_alpha(self, factor: i32) -> Result<Image> {
        // SAFETY: live image.
        let format = unsafe { ffi::vips_image_get_format(self.ptr()) };
        let max_alpha = if format == ffi::VipsBandFormat_VIPS_FORMAT_USHORT {
            65535.0
        } else {
            255.0
        };
        let n_max = cstring("max_alpha");
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs of (name, double).
        let status = unsafe {
            ffi::vips_premultiply(
                self.ptr(),
                &mut out,
                n_max.as_ptr(),
                max_alpha,
                null::<c_char>(),
            )
        };
        let premultiplied = wrap(status, out, "premultiply")?;
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_shrink(
                premultiplied.ptr(),
                &mut out,
                factor as f64,
                factor as f64,
                null::<c_char>(),
            )
        };
        let shrunk = wrap(status, out, "shrink")?;
        let mut out = null_mut();
        // SAFETY: as for premultiply.
        let status = unsafe {
            ffi::vips_unpremultiply(
                shrunk.ptr(),
                &mut out,
                n_max.as_ptr(),
                max_alpha,
                null::<c_char>(),
            )
        };
        wrap(status, out, "unpremultiply")?.cast(format)
    }

    /// Whether each band is one byte, as in 8-bit images.
    pub fn is_uchar(&self) -> bool {
        // SAFETY: live image.
        let format = unsafe { ffi::vips_image_get_format(self.ptr()) };
        format == ffi::VipsBandFormat_VIPS_FORMAT_UCHAR
    }

    /// Decodes the first `rows` rows at full width, top to bottom, and
    /// hands each to `each` with its number, as `bands()` bytes a pixel.
    /// For 8-bit images only. A few rows are decoded at a time into one
    /// buffer; see `vips_region_prepare`.
    pub fn each_row(
        &self,
        rows: i32,
        mut each: impl FnMut(i32, &[u8]),
    ) -> Result<()> {
        assert!(self.is_uchar(), "each_row reads 8-bit images only");
        let (width, bands) = (self.width(), self.bands());
        let row_bytes = width as usize * bands as usize;
        // SAFETY: a region on a live image, unreferenced below. Once
        // vips_region_prepare succeeds, `data` holds the rectangle's
        // pixels, row after row `bpl` bytes apart, each row `width` ×
        // `bands` bytes, until the region is prepared again or freed.
        unsafe {
            let region = ffi::vips_region_new(self.ptr());
            if region.is_null() {
                return Err(take_error("region"));
            }
            let mut top = 0;
            let mut status = 0;
            while top < rows && status == 0 {
                let height = ROWS_PER_READ.min(rows - top);
                let rect = ffi::VipsRect { left: 0, top, width, height };
                status = ffi::vips_region_prepare(region, &rect);
                if status == 0 {
                    let data = (*region).data;
                    let bpl = (*region).bpl as usize;
                    for row in 0..height {
                        each(
                            top + row,
                            std::slice::from_raw_parts(
                                data.add(row as usize * bpl),
                                row_bytes,
                            ),
                        );
                    }
                }
                top += height;
            }
            ffi::g_object_unref(region as *mut c_void);
            if status != 0 {
                return Err(take_error("decode"));
            }
        }
        Ok(())
    }

    /// A new 8-bit image of `pixels`, `width` × `height`, with this
    /// image's bands, interpretation, resolution and metadata: what a
    /// pixel operation done outside libvips hands back to it.
    pub fn with_pixels(
        &self,
        pixels: &[u8],
        width: i32,
        height: i32,
    ) -> Result<Image> {
        let bands = self.bands();
        assert_eq!(
            pixels.len(),
            width as usize * height as usize * bands as usize,
            "with_pixels needs width × height × bands bytes"
        );
        // SAFETY: the slice is live for the call and libvips copies it.
        let bare = unsafe {
            ffi::vips_image_new_from_memory_copy(
                pixels.as_ptr() as *const c_void,
                pixels.len() as ffi::size_t,
                width,
                height,
                bands,
                ffi::VipsBandFormat_VIPS_FORMAT_UCHAR,
            )
        };
        let bare = wrap(if bare.is_null() { -1 } else { 0 }, bare, "copy")?;
        let (n_interpretation, n_xres, n_yres) =
            (cstring("interpretation"), cstring("xres"), cstring("yres"));
        let mut out = null_mut();
        // SAFETY: live images, NULL-terminated varargs of an enum and two
        // doubles.
        let status = unsafe {
            ffi::vips_copy(
                bare.ptr(),
                &mut out,
                n_interpretation.as_ptr(),
                ffi::vips_image_get_interpretation(self.ptr()) as c_int,
                n_xres.as_ptr(),
                ffi::vips_image_get_xres(self.ptr()),
                n_yres.as_ptr(),
                ffi::vips_image_get_yres(self.ptr()),
                null::<c_char>(),
            )
        };
        let out = wrap(status, out, "copy")?;
        for name in self.field_names() {
            // The header's own fields were set above; a frame's height is
            // the image's.
            if HEADER_FIELDS.contains(&name.as_str()) || name == "page-height"
            {
                continue;
            }
            let name = cstring(&name);
            // SAFETY: live images; vips_image_get fills a zeroed GValue
            // with a copy of the field, which vips_image_set copies in
            // turn and we then unset.
            unsafe {
                let mut value: ffi::GValue = std::mem::zeroed();
                if ffi::vips_image_get(self.ptr(), name.as_ptr(), &mut value)
                    == 0
                {
                    ffi::vips_image_set(out.ptr(), name.as_ptr(), &mut value);
                    ffi::g_value_unset(&mut value);
                } else {
                    ffi::vips_error_clear();
                }
            }
        }
        Ok(out)
    }

    /// Composites the alpha channel onto an opaque background colour.
    pub fn flatten(self, background: [f64; 3]) -> Result<Image> {
        if !self.has_alpha() {
            return Ok(self);
        }
        let grey = self.bands() <= 2;
        let colour: &[f64] = if grey { &background[..1] } else { &background };
        let name = cstring("background");
        let mut out = null_mut();
        // SAFETY: the array is created, passed and released here; varargs
        // are NULL-terminated.
        let status = unsafe {
            let array = ffi::vips_array_double_new(
                colour.as_ptr(),
                colour.len() as c_int,
            );
            let status = ffi::vips_flatten(
                self.ptr(),
                &mut out,
                name.as_ptr(),
                array,
                null::<c_char>(),
            );
            ffi::vips_area_unref(array as *mut ffi::VipsArea);
            status
        };
        wrap(status, out, "flatten")
    }

    /// Centres the image on a `width` × `height` canvas of `background`
    /// (one value per band, alpha included).
    pub fn embed_centre(
        self,
        width: i32,
        height: i32,
        background: &[f64],
    ) -> Result<Image> {
        if self.width() == width && self.height() == height {
            return Ok(self);
        }
        let x = (width - self.width()) / 2;
        let y = (height - self.height()) / 2;
        let (n_extend, n_background) =
            (cstring("extend"), cstring("background"));
        let mut out = null_mut();
        // SAFETY: as in flatten.
        let status = unsafe {
            let array = ffi::vips_array_double_new(
                background.as_ptr(),
                background.len() as c_int,
            );
            let status = ffi::vips_embed(
                self.ptr(),
                &mut out,
                x,
                y,
                width,
                height,
                n_extend.as_ptr(),
                ffi::VipsExtend_VIPS_EXTEND_BACKGROUND as c_int,
                n_background.as_ptr(),
                array,
                null::<c_char>(),
            );
            ffi::vips_area_unref(array as *mut ffi::VipsArea);
            status
        };
        wrap(status, out, "embed")
    }

    /// Computes every pixel now, into memory. Decoding happens here, so a
    /// damaged original fails here and not halfway through encoding.
    pub fn materialise(self) -> Result<Image> {
        // SAFETY: live image; returns a new reference or NULL.
        let out = unsafe { ffi::vips_image_copy_memory(self.ptr()) };
        wrap(if out.is_null() { -1 } else { 0 }, out, "decode")
    }

    /// Removes every metadata field: EXIF (GPS, camera, dates), XMP,
    /// IPTC, the ICC profile (the pixels are sRGB by now), comments. The
    /// encoders' own `strip` is not enough: libvips 8.14's WebP encoder
    /// writes EXIF and ICC chunks whatever it is told.
    pub fn strip_metadata(&mut self, keep: Keep) {
        // SAFETY: live image we hold the only reference to (a fresh copy
        // from `materialise`); vips_image_get_fields returns a
        // NULL-terminated array we free with g_strfreev.
        unsafe {
            let fields = ffi::vips_image_get_fields(self.ptr());
            if fields.is_null() {
                return;
            }
            let mut names = Vec::new();
            let mut at = fields;
            while !(*at).is_null() {
                names.push(CStr::from_ptr(*at).to_owned());
                at = at.add(1);
            }
            ffi::g_strfreev(fields);
            for name in names {
                let text = name.to_string_lossy();
                if is_metadata(&text) && !keep.keeps(&text) {
                    ffi::vips_image_remove(self.ptr(), name.as_ptr());
                }
            }
        }
    }

    /// Encodes the image; see [`Encoder`]. The encoders strip metadata
    /// unless `keep` asks for some, which [`Image::strip_metadata`] has
    /// then chosen.
    pub fn encode(&self, encoder: &Encoder, keep: Keep) -> Result<Vec<u8>> {
        let strip_flag = c_int::from(!keep.any());
        let mut buf: *mut c_void = null_mut();
        let mut len: ffi::size_t = 0;
        let q = cstring("Q");
        let strip = cstring("strip");
        // SAFETY: live image, valid out pointers, NULL-terminated varargs
        // whose names exist in libvips 8.14 and later.
        let status = unsafe {
            match *encoder {
                Encoder::Jpeg { quality, progressive } => {
                    let opt = cstring("optimize_coding");
                    let interlace = cstring("interlace");
                    ffi::vips_jpegsave_buffer(
                        self.ptr(),
                        &mut buf,
                        &mut len,
                        q.as_ptr(),
                        quality as c_int,
                        strip.as_ptr(),
                        strip_flag,
                        opt.as_ptr(),
                        1 as c_int,
                        interlace.as_ptr(),
                        progressive as c_int,
                        null::<c_char>(),
                    )
                }
                Encoder::Png { compression, interlace } => {
                    let level = cstring("compression");
                    let n_interlace = cstring("interlace");
                    ffi::vips_pngsave_buffer(
                        self.ptr(),
                        &mut buf,
                        &mut len,
                        level.as_ptr(),
                        compression as c_int,
                        strip.as_ptr(),
                        strip_flag,
                        n_interlace.as_ptr(),
                        interlace as c_int,
                        null::<c_char>(),
                    )
                }
                Encoder::Webp { quality, effort, lossless } => {
                    let n_effort = cstring("effort");
                    let n_lossless = cstring("lossless");
                    ffi::vips_webpsave_buffer(
                        self.ptr(),
                        &mut buf,
                        &mut len,
                        q.as_ptr(),
                        quality as c_int,
                        n_effort.as_ptr(),
                        effort as c_int,
                        strip.as_ptr(),
                        strip_flag,
                        n_lossless.as_ptr(),
                        lossless as c_int,
                        null::<c_char>(),
                    )
                }
                Encoder::Avif { quality, effort } => {
                    let (n_comp, n_effort, n_depth) = (
                        cstring("compression"),
                        cstring("effort"),
                        cstring("bitdepth"),
                    );
                    ffi::vips_heifsave_buffer(
                        self.ptr(),
                        &mut buf,
                        &mut len,
                        q.as_ptr(),
                        quality as c_int,
                        n_comp.as_ptr(),
                        ffi::VipsForeignHeifCompression_VIPS_FOREIGN_HEIF_COMPRESSION_AV1
                            as c_int,
                        n_effort.as_ptr(),
                        effort as c_int,
                        n_depth.as_ptr(),
                        8 as c_int,
                        strip.as_ptr(),
                        strip_flag,
                        null::<c_char>(),
                    )
                }
                Encoder::Gif => ffi::vips_gifsave_buffer(
                    self.ptr(),
                    &mut buf,
                    &mut len,
                    strip.as_ptr(),
                    strip_flag,
                    null::<c_char>(),
                ),
            }
        };
        if status != 0 || buf.is_null() {
            return Err(take_error("encode"));
        }
        // SAFETY: libvips handed us `len` bytes at `buf`, allocated with
        // g_malloc; we copy them and free the original.
        let bytes = unsafe {
            let bytes =
                std::slice::from_raw_parts(buf as *const u8, len as usize)
                    .to_vec();
            ffi::g_free(buf);
            bytes
        };
        Ok(bytes)
    }
}

/// Metadata a URL asks to keep (`keep_copyright`, `keep_icc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    pub copyright: bool,
    pub icc: bool,
}

impl Keep {
    pub fn any(self) -> bool {
        self.copyright || self.icc
    }

    /// Whether a metadata field is one to keep. The EXIF block stays for
    /// the copyright, and libvips writes it back holding only the
    /// `exif-ifd…` fields left on the image: Copyright and Artist.
    fn keeps(self, name: &str) -> bool {
        (self.icc && name == "icc-profile-data")
            || (self.copyright
                && matches!(
                    name,
                    "exif-data" | "exif-ifd0-Copyright" | "exif-ifd0-Artist"
                ))
    }
}

/// The fields every libvips image has in its header, rather than as
/// metadata: `vips_image_get_fields` lists them first.
const HEADER_FIELDS: [&str; 11] = [
    "width",
    "height",
    "bands",
    "format",
    "coding",
    "interpretation",
    "xoffset",
    "yoffset",
    "xres",
    "yres",
    "filename",
];

/// Whether a field of a libvips image is metadata to strip, as opposed to
/// what libvips needs to write the pixels (sizes, resolution, pages).
fn is_metadata(name: &str) -> bool {
    name.ends_with("-data")
        || name.starts_with("exif-")
        || name.starts_with("xmp")
        || name.starts_with("iptc")
        || name.contains("comment")
        || name == "orientation"
        || name == "gainmap-data"
}

/// An encoder and its settings, each one an option libvips 8.14 knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    Jpeg { quality: u8, progressive: bool },
    Png { compression: u8, interlace: bool },
    Webp { quality: u8, effort: u8, lossless: bool },
    Avif { quality: u8, effort: u8 },
    Gif,
}

impl Image {
    /// Sets a string field (an EXIF tag such as `exif-ifd0-Copyright`,
    /// which libvips writes into the EXIF block on save). For tests that
    /// make their own inputs.
    pub fn set_string(&mut self, name: &str, value: &str) {
        let (name, value) = (cstring(name), cstring(value));
        // SAFETY: live image; libvips copies both strings.
        unsafe {
            ffi::vips_image_set_string(
                self.ptr(),
                name.as_ptr(),
                value.as_ptr(),
            )
        }
    }

    /// Every metadata field's name, for tests and diagnostics.
    pub fn field_names(&self) -> Vec<String> {
        // SAFETY: as in strip_metadata.
        unsafe {
            let fields = ffi::vips_image_get_fields(self.ptr());
            if fields.is_null() {
                return Vec::new();
            }
            let mut names = Vec::new();
            let mut at = fields;
            while !(*at).is_null() {
                names.push(CStr::from_ptr(*at).to_string_lossy().into_owned());
                at = at.add(1);
            }
            ffi::g_strfreev(fields);
            names
        }
    }

    /// The `width` × `height` area at `left`, `top`.
    pub fn extract(
        self,
        left: i32,
        top: i32,
        width: i32,
        height: i32,
    ) -> Result<Image> {
        if (left, top, width, height) == (0, 0, self.width(), self.height()) {
            return Ok(self);
        }
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_extract_area(
                self.ptr(),
                &mut out,
                left,
                top,
                width,
                height,
                null::<c_char>(),
            )
        };
        wrap(status, out, "extract_area")
    }

    /// Another reference to the same image, for reading several areas.
    pub fn share(&self) -> Image {
        // SAFETY: a live GObject; the new reference is dropped by Drop.
        unsafe { ffi::g_object_ref(self.ptr() as *mut c_void) };
        Image(self.0)
    }

    /// Pages in the file (frames of an animation); 1 for a still.
    pub fn n_pages(&self) -> i32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_n_pages(self.ptr()) }
    }

    /// The height of one page (frame) of a multi-page image.
    pub fn page_height(&self) -> i32 {
        // SAFETY: live image.
        unsafe { ffi::vips_image_get_page_height(self.ptr()) }
    }

    /// Stacks frames of equal size into one animation, one above the
    /// next, with the page height the encoders read. The first frame's
    /// metadata (delays, loop count) carries over.
    pub fn join_frames(frames: Vec<Image>) -> Result<Image> {
        let Some(first) = frames.first() else {
            return Err(VipsError {
                operation: "arrayjoin",
                message: "no frames".into(),
            });
        };
        let page_height = first.height();
        let mut pointers: Vec<*mut ffi::VipsImage> =
            frames.iter().map(Image::ptr).collect();
        let (n_across, n_page_height) =
            (cstring("across"), cstring("page-height"));
        let mut joined = null_mut();
        // SAFETY: an array of live images, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_arrayjoin(
                pointers.as_mut_ptr(),
                &mut joined,
                pointers.len() as c_int,
                n_across.as_ptr(),
                1 as c_int,
                null::<c_char>(),
            )
        };
        let joined = wrap(status, joined, "arrayjoin")?;
        // A copy of our own to set the page height on.
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs; the copy is ours.
        let status = unsafe {
            ffi::vips_copy(joined.ptr(), &mut out, null::<c_char>())
        };
        let copy = wrap(status, out, "copy")?;
        // SAFETY: live image we hold the only reference to.
        unsafe {
            ffi::vips_image_set_int(
                copy.ptr(),
                n_page_height.as_ptr(),
                page_height,
            )
        };
        Ok(copy)
    }

    /// Applies the EXIF orientation to the pixels and removes the tag
    /// (`vips_autorot`), so nothing later turns the image again.
    pub fn autorotate(self) -> Result<Image> {
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_autorot(self.ptr(), &mut out, null::<c_char>())
        };
        wrap(status, out, "autorot")
    }

    /// Turns the image clockwise by 90, 180 or 270 degrees.
    pub fn rotate(self, degrees: u32) -> Result<Image> {
        let angle = match degrees {
            90 => ffi::VipsAngle_VIPS_ANGLE_D90,
            180 => ffi::VipsAngle_VIPS_ANGLE_D180,
            270 => ffi::VipsAngle_VIPS_ANGLE_D270,
            _ => return Ok(self),
        };
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_rot(self.ptr(), &mut out, angle, null::<c_char>())
        };
        wrap(status, out, "rot")
    }

    /// Mirrors the image left to right, top to bottom, or both.
    pub fn flip(self, horizontal: bool, vertical: bool) -> Result<Image> {
        let mut image = self;
        for (wanted, direction) in [
            (horizontal, ffi::VipsDirection_VIPS_DIRECTION_HORIZONTAL),
            (vertical, ffi::VipsDirection_VIPS_DIRECTION_VERTICAL),
        ] {
            if !wanted {
                continue;
            }
            let mut out = null_mut();
            // SAFETY: live image, NULL-terminated varargs.
            let status = unsafe {
                ffi::vips_flip(
                    image.ptr(),
                    &mut out,
                    direction,
                    null::<c_char>(),
                )
            };
            image = wrap(status, out, "flip")?;
        }
        Ok(image)
    }

    /// Greyscale, keeping an alpha channel.
    pub fn to_grey(self) -> Result<Image> {
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_colourspace(
                self.ptr(),
                &mut out,
                ffi::VipsInterpretation_VIPS_INTERPRETATION_B_W,
                null::<c_char>(),
            )
        };
        wrap(status, out, "colourspace")
    }

    /// A Gaussian blur of `sigma` pixels.
    ///
    /// With approximate precision (box filters), which costs the same
    /// whatever the sigma: an exact kernel of sigma 100 on a 24 MP image
    /// held a worker past its time limit.
    pub fn blur(self, sigma: f64) -> Result<Image> {
        let precision = cstring("precision");
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs of (name, int).
        let status = unsafe {
            ffi::vips_gaussblur(
                self.ptr(),
                &mut out,
                sigma,
                precision.as_ptr(),
                ffi::VipsPrecision_VIPS_PRECISION_APPROXIMATE as c_int,
                null::<c_char>(),
            )
        };
        wrap(status, out, "gaussblur")?.cast_uchar()
    }

    /// Sharpens edges with an unsharp mask of `sigma` pixels
    /// (`vips_sharpen`, which works in LAB and returns sRGB).
    pub fn sharpen(self, sigma: f64) -> Result<Image> {
        let name = cstring("sigma");
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs of (name, double).
        let status = unsafe {
            ffi::vips_sharpen(
                self.ptr(),
                &mut out,
                name.as_ptr(),
                sigma,
                null::<c_char>(),
            )
        };
        wrap(status, out, "sharpen")?.to_srgb()
    }

    /// 8 bits per band, for operations that may widen the format.
    fn cast_uchar(self) -> Result<Image> {
        self.cast(ffi::VipsBandFormat_VIPS_FORMAT_UCHAR)
    }

    /// The same pixels in band format `format`, or the image itself when
    /// it is in that format already.
    fn cast(self, format: ffi::VipsBandFormat) -> Result<Image> {
        // SAFETY: live image.
        if unsafe { ffi::vips_image_get_format(self.ptr()) } == format {
            return Ok(self);
        }
        let mut out = null_mut();
        // SAFETY: live image, NULL-terminated varargs.
        let status = unsafe {
            ffi::vips_cast(self.ptr(), &mut out, format, null::<c_char>())
        };
        wrap(status, out, "cast")
    }
}
