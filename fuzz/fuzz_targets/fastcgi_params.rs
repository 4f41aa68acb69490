//! A PARAMS block: name-value pairs with one- and four-byte lengths.
#![no_main]

use imgworker::fastcgi::params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pairs) = params::decode(data, 64 * 1024) {
        // What decodes must encode back to the same bytes.
        let mut again = Vec::new();
        for (name, value) in &pairs {
            params::encode(name, value, &mut again);
        }
        assert_eq!(params::decode(&again, usize::MAX).unwrap(), pairs);
    }
});
