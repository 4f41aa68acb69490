//! The URL a client sends: signature split, options, the original's path,
//! and the resize plan made from them.
#![no_main]

use imgworker::signing;
use imgworker::source::SourcePath;
use imgworker::transform::Options;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (segment, path) = text.split_once('/').unwrap_or((text, ""));
    let (options, _signature) = signing::split_signature(segment);
    let _ = SourcePath::new(path);
    if let Ok(options) = Options::parse(&options, 4096) {
        for (width, height) in [(1, 1), (3000, 2000), (1, 65535), (65535, 1)] {
            let plan = options.resize.plan(width, height);
            let (w, h) = plan.output_size(width, height);
            assert!(w <= 65535 * 4096 && h <= 65535 * 4096);
        }
    }
});
