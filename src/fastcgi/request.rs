//! One request as the worker sees it: its id, its CGI environment and its
//! body, read whole before the worker starts on it.
//!
//! The params stay in the form they arrived in, one block of name-value
//! pairs checked once when the request is built; lookups walk the block.
//! Nginx sends a few dozen pairs, so a scan costs less than building a map,
//! and no allocation depends on how many pairs the peer chose to send.

use super::ProtocolError;
use super::params;

/// A whole responder request.
#[derive(Clone, Debug)]
pub struct Request {
    id: u16,
    /// The PARAMS stream, known to decode without error.
    params: Vec<u8>,
    stdin: Vec<u8>,
}

impl Request {
    /// Builds a request from its streams, checking every pair of `params`.
    pub(super) fn new(
        id: u16,
        params: Vec<u8>,
        stdin: Vec<u8>,
    ) -> Result<Request, ProtocolError> {
        for pair in params::pairs(&params) {
            pair?;
        }
        Ok(Request { id, params, stdin })
    }

    /// The FastCGI request id, which the response must carry.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The value of the param called exactly `name`. Should a name come
    /// twice, the last one wins, as it would in an environment.
    pub fn param(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.params()
            .filter(|&(candidate, _)| candidate == name)
            .map(|(_, value)| value)
            .last()
    }

    /// `param`, for values that are UTF-8; `None` for those that are not.
    pub fn param_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.param(name)?).ok()
    }

    /// Every param in the order the web server sent them.
    pub fn params(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        // `new` checked the block, so there are no errors to drop here.
        params::pairs(&self.params).filter_map(Result::ok)
    }

    /// The request body; empty for the GET and HEAD requests images get.
    pub fn stdin(&self) -> &[u8] {
        &self.stdin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&[u8], &[u8])]) -> Request {
        let mut block = Vec::new();
        for (name, value) in pairs {
            params::encode(name, value, &mut block);
        }
        Request::new(1, block, Vec::new()).unwrap()
    }

    #[test]
    fn param_matches_the_exact_name_only() {
        let request = request(&[
            (b"DOCUMENT_URI", b"/img/a.jpg"),
            (b"QUERY_STRING", b""),
        ]);
        assert_eq!(request.param("DOCUMENT_URI"), Some(&b"/img/a.jpg"[..]));
        assert_eq!(request.param("QUERY_STRING"), Some(&b""[..]));
        assert_eq!(request.param("document_uri"), None);
        assert_eq!(request.param("DOCUMENT"), None);
    }

    #[test]
    fn param_str_is_none_for_values_that_are_not_utf8() {
        let request = request(&[(b"HTTP_X_RAW", b"caf\xe9")]);
        assert_eq!(request.param("HTTP_X_RAW"), Some(&b"caf\xe9"[..]));
        assert_eq!(request.param_str("HTTP_X_RAW"), None);
    }

    #[test]
    fn last_of_two_params_with_one_name_wins() {
        let request = request(&[(b"A", b"first"), (b"A", b"second")]);
        assert_eq!(request.param_str("A"), Some("second"));
    }

    #[test]
    fn params_come_back_in_order_with_their_bytes() {
        let request = request(&[(b"B", b"2"), (b"\xff", b"1")]);
        let all: Vec<_> = request.params().collect();
        assert_eq!(all, [(&b"B"[..], &b"2"[..]), (&b"\xff"[..], &b"1"[..])]);
    }

    #[test]
    fn request_with_a_broken_params_block_is_not_built() {
        let result = Request::new(1, b"\x05\x00abc".to_vec(), Vec::new());
        assert!(matches!(
            result,
            Err(ProtocolError::TruncatedParams { offset: 0 })
        ));
    }
}
