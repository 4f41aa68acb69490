//! Glide's URL signature, so a PHP site's signed Glide URLs keep working.
//!
//! The Nginx snippet turns a Glide URL (`/glide/<path>?w=300&fm=webp&s=…`)
//! into a native one (`/img/w_300,f_webp,gs_…/<path>`), so repeats are
//! static hits and parameter order does not matter; the signature rides
//! along as `gs_`, part of the cache key like `s_`. On a miss the worker
//! checks it the way Glide's SignatureFactory makes it: MD5 of the key, a
//! colon, the request path without its leading slash, `?`, and the other
//! parameters sorted by name and encoded as PHP's http_build_query does.
//! Comparison is in constant time.

use md5::{Digest, Md5};

/// Glide's signature of a request path and its query string (the `s`
/// parameter itself left out).
pub fn signature(key: &str, path: &str, query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .filter(|(name, _)| name != "s")
        .collect();
    // PHP's ksort: by name; a repeated name keeps its last value.
    params.reverse();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params.dedup_by(|a, b| a.0 == b.0);
    let query: Vec<String> = params
        .iter()
        .map(|(name, value)| {
            format!("{}={}", php_urlencode(name), php_urlencode(value))
        })
        .collect();
    let text =
        format!("{key}:{}?{}", path.trim_start_matches('/'), query.join("&"));
    let digest = Md5::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` is Glide's signature for the request, in constant time.
/// A parameter named twice is refused: Nginx translates the first, PHP
/// (and so the signature) reads the last.
pub fn verify(key: &str, path: &str, query: &str, given: &str) -> bool {
    let mut names: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| form_decode(pair.split_once('=').map_or(pair, |(n, _)| n)))
        .collect();
    names.sort();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return false;
    }
    let expected = signature(key, path, query);
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// `application/x-www-form-urlencoded` decoding: `%XX` and `+`.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                // Bytes, not a str slice: a '%' may sit before a
                // multi-byte character.
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PHP's urlencode, which http_build_query uses: letters, digits and
/// `-_.` as they are, space as `+`, every other byte as `%XX`.
fn php_urlencode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_one_glide_makes() {
        // Computed independently, as Glide's SignatureFactory does:
        // md5('secret:glide/photos/a.jpg?fm=webp&w=300').
        assert_eq!(
            signature(
                "secret",
                "/glide/photos/a.jpg",
                "w=300&fm=webp&s=ignored"
            ),
            "6c2c93b5e29d3448f47a3eb9b07fa13f"
        );
        // Order in the URL does not matter; encoding follows PHP.
        assert_eq!(
            signature("secret", "/glide/photos/a.jpg", "fm=webp&w=300"),
            signature("secret", "glide/photos/a.jpg", "w=300&fm=webp")
        );
    }

    #[test]
    fn verify_accepts_only_the_right_signature() {
        let good = signature("secret", "/glide/a.jpg", "w=10");
        assert!(verify("secret", "/glide/a.jpg", "w=10&s=x", &good));
        assert!(!verify("secret", "/glide/a.jpg", "w=11", &good));
        assert!(!verify("other", "/glide/a.jpg", "w=10", &good));
        assert!(!verify("secret", "/glide/a.jpg", "w=10", "short"));
        assert!(!verify(
            "secret",
            "/glide/a.jpg",
            "w=10",
            &good.to_uppercase()
        ));
        // w=11 first, for Nginx; w=10 last, for the signature.
        assert!(!verify("secret", "/glide/a.jpg", "w=11&w=10", &good));
    }

    #[test]
    fn a_percent_before_a_multibyte_character_does_not_panic() {
        assert_eq!(form_decode("%aé"), "%aé");
        assert_eq!(form_decode("é%"), "é%");
    }

    #[test]
    fn values_are_encoded_as_php_encodes_them() {
        assert_eq!(php_urlencode("a b/c~"), "a+b%2Fc%7E");
        assert_eq!(form_decode("a+b%2Fc%7e%"), "a b/c~%");
    }
}
