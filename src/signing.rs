//! Signed URLs: only URLs made by someone who holds a key are rendered.
//!
//! Without signing, anyone can ask for endless sizes and fill the disk and
//! the CPUs. With `signing_keys` set, every URL must carry `s_<signature>`
//! among its options, where the signature is HMAC-SHA256, keyed with one
//! of the keys, over the canonical request: the other options as written,
//! a slash, and the path of the original (`w_300,f_webp/photos/a.jpg`).
//! Its first 16 bytes (128 bits), base64url without padding, make 22
//! characters. The signature is part of the URL path, so it is part of the
//! cache key too: an unsigned URL never matches a signed derivative.
//!
//! Several keys are accepted at once, so a key can be rotated without
//! downtime: put the new key first (new URLs are signed with it), keep the
//! old one after it until pages with old URLs are gone, then remove it.
//! Signatures are compared in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Bytes of the MAC kept in the URL.
const SIGNATURE_BYTES: usize = 16;

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// The keys URLs may be signed with; none means signing is off.
#[derive(Clone, Default)]
pub struct Signer {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

/// What is wrong with a URL's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Missing,
    Wrong,
    /// A Glide URL without its `s` parameter.
    GlideMissing,
    /// A Glide URL while `/img/` URLs must be signed and no
    /// `glide_sign_key` is set: it cannot carry a signature we check.
    GlideUnsignable,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "URL is not signed (s_ option missing)",
            SignatureError::Wrong => "URL signature does not match",
            SignatureError::GlideMissing => {
                "URL is not signed (Glide's s parameter missing)"
            }
            SignatureError::GlideUnsignable => {
                "Glide URLs are refused: signing_keys is set and \
                 glide_sign_key is not"
            }
        })
    }
}

impl Signer {
    pub fn new(keys: &[String]) -> Signer {
        Signer { keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect() }
    }

    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    fn mac(key: &[u8], canonical: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .expect("HMAC takes keys of any length");
        mac.update(canonical.as_bytes());
        mac
    }

    /// The signature of `canonical` with the first key.
    pub fn sign(&self, canonical: &str) -> Option<String> {
        let key = self.keys.first()?;
        let tag = Signer::mac(key, canonical).finalize().into_bytes();
        Some(URL_SAFE_NO_PAD.encode(&tag[..SIGNATURE_BYTES]))
    }

    /// Checks a signature against every key.
    pub fn verify(
        &self,
        canonical: &str,
        signature: Option<&str>,
    ) -> Result<(), SignatureError> {
        let signature = signature.ok_or(SignatureError::Missing)?;
        let Ok(tag) = URL_SAFE_NO_PAD.decode(signature) else {
            return Err(SignatureError::Wrong);
        };
        if tag.len() != SIGNATURE_BYTES {
            return Err(SignatureError::Wrong);
        }
        // verify_truncated_left compares in constant time.
        let good = self.keys.iter().any(|key| {
            Signer::mac(key, canonical).verify_truncated_left(&tag).is_ok()
        });
        if good { Ok(()) } else { Err(SignatureError::Wrong) }
    }
}

/// Splits the `s_` item out of an options segment: the options the
/// signature covers, as written, and the signature.
pub fn split_signature(segment: &str) -> (String, Option<&str>) {
    split_item(segment, "s_")
}

/// Splits the first item starting with `prefix` out of an options
/// segment: the other items as written, and that item's value.
pub fn split_item<'a>(
    segment: &'a str,
    prefix: &str,
) -> (String, Option<&'a str>) {
    let mut found = None;
    let mut rest: Vec<&str> = Vec::new();
    for item in segment.split(',') {
        match item.strip_prefix(prefix) {
            Some(value) if found.is_none() => found = Some(value),
            _ => rest.push(item),
        }
    }
    (rest.join(","), found)
}

/// The canonical request a signature covers.
pub fn canonical(options: &str, path: &str) -> String {
    format!("{options}/{path}")
}

/// Adds a signature to a URL path `/<prefix>/<options>/<path>`, or to a
/// whole URL; returns `None` if it is not of that shape.
pub fn sign_url(signer: &Signer, url: &str) -> Option<String> {
    // Keep scheme and host as they are.
    let path_start = match url.find("://") {
        Some(scheme) => scheme + 3 + url[scheme + 3..].find('/')?,
        None => 0,
    };
    let (origin, path) = url.split_at(path_start);
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (prefix, segment, original) =
        (parts.next()?, parts.next()?, parts.next()?);
    if prefix.is_empty() || segment.is_empty() || original.is_empty() {
        return None;
    }
    let (options, _) = split_signature(segment);
    // The server checks the path as Nginx decodes it ($uri).
    let canonical =
        canonical(&percent_decode(&options), &percent_decode(original));
    let signature = signer.sign(&canonical)?;
    Some(format!("{origin}/{prefix}/{options},s_{signature}/{original}"))
}

/// `%XX` decoding, as Nginx decodes a URL's path into `$uri`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            std::str::from_utf8(h)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        });
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_signature_is_truncated_hmac_sha256_in_base64url() {
        // Computed independently: Python's hmac and base64 modules.
        let signer = Signer::new(&[KEY.to_string()]);
        let canonical = canonical("w_300,f_webp", "photos/a.jpg");
        assert_eq!(signer.sign(&canonical).unwrap(), "lxs-vvMlV-tXi-a7PwDxsA");
    }

    #[test]
    fn good_missing_wrong_old_and_removed_keys() {
        let old = Signer::new(&["old key, long enough to use".to_string()]);
        let canonical = canonical("w_300", "a.jpg");
        let old_signature = old.sign(&canonical).unwrap();

        let rotated = Signer::new(&[
            KEY.to_string(),
            "old key, long enough to use".into(),
        ]);
        let new_signature = rotated.sign(&canonical).unwrap();
        assert_eq!(rotated.verify(&canonical, Some(&new_signature)), Ok(()));
        assert_eq!(
            rotated.verify(&canonical, Some(&old_signature)),
            Ok(()),
            "old key still accepted"
        );
        assert_eq!(
            rotated.verify(&canonical, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            rotated.verify(&canonical, Some("AAAAAAAAAAAAAAAAAAAAAA")),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            rotated.verify(&canonical, Some("not base64!")),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            rotated.verify("w_301/a.jpg", Some(&new_signature)),
            Err(SignatureError::Wrong)
        );

        let removed = Signer::new(&[KEY.to_string()]);
        assert_eq!(
            removed.verify(&canonical, Some(&old_signature)),
            Err(SignatureError::Wrong)
        );
    }

    #[test]
    fn the_signature_item_may_sit_anywhere_in_the_options() {
        assert_eq!(
            split_signature("w_300,s_abc,f_webp"),
            ("w_300,f_webp".into(), Some("abc"))
        );
        assert_eq!(split_signature("w_300"), ("w_300".into(), None));
    }

    #[test]
    fn sign_url_adds_the_item_to_a_path_or_a_whole_url() {
        let signer = Signer::new(&[KEY.to_string()]);
        assert_eq!(
            sign_url(&signer, "/img/w_300,f_webp/photos/a.jpg").unwrap(),
            "/img/w_300,f_webp,s_lxs-vvMlV-tXi-a7PwDxsA/photos/a.jpg"
        );
        assert_eq!(
            sign_url(
                &signer,
                "https://example.com/img/w_300,f_webp/photos/a.jpg"
            )
            .unwrap(),
            "https://example.com/img/w_300,f_webp,s_lxs-vvMlV-tXi-a7PwDxsA/photos/a.jpg"
        );
        assert!(sign_url(&signer, "/img/w_300").is_none());
        // The path is signed as the server sees it, decoded.
        let encoded = sign_url(&signer, "/img/w_300/a%20b.jpg").unwrap();
        let plain = sign_url(&signer, "/img/w_300/a b.jpg").unwrap();
        assert_eq!(encoded.replace("%20", " "), plain);
    }
}
