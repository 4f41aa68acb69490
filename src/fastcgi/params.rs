//! Name-value pairs, the encoding of PARAMS and GET_VALUES content
//! (FastCGI 1.0 specification, section 3.4).
//!
//! Each pair is a name length, a value length, the name, then the value. A
//! length below 128 takes one byte; a longer one takes four, big-endian,
//! with the top bit set as a marker. Names and values are bytes: Nginx
//! passes request headers through as they came, so they need not be UTF-8.
//!
//! Decoding never allocates on the strength of a length it read: every
//! length is checked against the bytes actually left in the block, and
//! `pairs` hands out slices of the block itself.

use super::ProtocolError;

/// The longest name or value the four-byte form can express.
pub const MAX_LENGTH: usize = 0x7fff_ffff;

/// A name and its value, both borrowed from the block they came from.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// The pairs of `block`, in order, as slices of it.
///
/// A pair that runs past the end of the block yields one error, after which
/// the iterator ends.
pub fn pairs(block: &[u8]) -> Pairs<'_> {
    Pairs { rest: block, offset: 0 }
}

/// Decodes a whole block, refusing one larger than `max_bytes`.
pub fn decode(
    block: &[u8],
    max_bytes: usize,
) -> Result<Vec<Pair<'_>>, ProtocolError> {
    if block.len() > max_bytes {
        return Err(ProtocolError::ParamsTooLarge { limit: max_bytes });
    }
    pairs(block).collect()
}

/// Appends one pair to `out`, choosing the short length form where it fits.
///
/// # Panics
///
/// If `name` or `value` is longer than `MAX_LENGTH`, which no pair this
/// server sends comes near.
pub fn encode(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    push_length(name.len(), out);
    push_length(value.len(), out);
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn push_length(len: usize, out: &mut Vec<u8>) {
    assert!(len <= MAX_LENGTH, "name-value length {len} is too long");
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// Iterator returned by `pairs`.
#[derive(Clone, Debug)]
pub struct Pairs<'a> {
    rest: &'a [u8],
    /// Where `rest` starts in the block, for error messages.
    offset: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Result<Pair<'a>, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match split_pair(self.rest) {
            Some((name, value, rest)) => {
                self.offset += self.rest.len() - rest.len();
                self.rest = rest;
                Some(Ok((name, value)))
            }
            None => {
                let offset = self.offset;
                self.rest = &[];
                Some(Err(ProtocolError::TruncatedParams { offset }))
            }
        }
    }
}

/// Splits the first pair off `bytes`, or `None` if it is cut short.
fn split_pair(bytes: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (name_len, bytes) = split_length(bytes)?;
    let (value_len, bytes) = split_length(bytes)?;
    if name_len > bytes.len() {
        return None;
    }
    let (name, bytes) = bytes.split_at(name_len);
    if value_len > bytes.len() {
        return None;
    }
    let (value, rest) = bytes.split_at(value_len);
    Some((name, value, rest))
}

fn split_length(bytes: &[u8]) -> Option<(usize, &[u8])> {
    match *bytes {
        [short, ref rest @ ..] if short < 0x80 => Some((short.into(), rest)),
        [b0, b1, b2, b3, ref rest @ ..] => {
            let len = u32::from_be_bytes([b0 & 0x7f, b1, b2, b3]);
            // Where usize is narrower than 31 bits, a length it cannot
            // hold cannot fit in the block either.
            Some((usize::try_from(len).ok()?, rest))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            encode(name, value, &mut out);
        }
        out
    }

    #[test]
    fn params_with_one_byte_lengths_decode() {
        let block = b"\x0b\x02SERVER_PORT80\x0e\x03REQUEST_METHODGET";
        let decoded = decode(block, 1024).unwrap();
        assert_eq!(
            decoded,
            [
                (&b"SERVER_PORT"[..], &b"80"[..]),
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
            ]
        );
    }

    #[test]
    fn params_with_four_byte_lengths_decode() {
        let value = vec![b'x'; 300];
        let mut block = vec![0x80, 0, 0, 4, 0x80, 0, 0x01, 0x2c];
        block.extend_from_slice(b"NAME");
        block.extend_from_slice(&value);

        let decoded = decode(&block, 1024).unwrap();
        assert_eq!(decoded, [(&b"NAME"[..], &value[..])]);
    }

    #[test]
    fn encoding_picks_the_short_form_below_128_bytes() {
        let short = encoded(&[(&[b'n'; 127], b"")]);
        assert_eq!(&short[..2], [127, 0]);

        let long = encoded(&[(&[b'n'; 128], b"")]);
        assert_eq!(&long[..5], [0x80, 0, 0, 128, 0]);
    }

    #[test]
    fn encoded_pairs_decode_to_themselves() {
        let long_value = vec![0xff; 70_000];
        let pairs: [(&[u8], &[u8]); 3] = [
            (b"FCGI_MPXS_CONNS", b"0"),
            (b"HTTP_X_ODD", b"\xc3\x28 not utf-8"),
            (b"HTTP_COOKIE", &long_value),
        ];
        let block = encoded(&pairs);
        assert_eq!(decode(&block, block.len()).unwrap(), pairs);
    }

    #[test]
    fn empty_names_and_values_are_allowed() {
        assert_eq!(decode(b"\x00\x00", 2).unwrap(), [(&b""[..], &b""[..])]);
        assert!(decode(b"", 0).unwrap().is_empty());
    }

    #[test]
    fn truncated_length_is_an_error_not_a_panic() {
        for block in [&b"\x80"[..], b"\x80\x00\x00", b"\x04", b"\x04\x80\x00"]
        {
            assert!(matches!(
                decode(block, 64),
                Err(ProtocolError::TruncatedParams { offset: 0 })
            ));
        }
    }

    #[test]
    fn length_past_the_end_of_the_block_is_an_error_not_an_allocation() {
        // Claims a 2 GiB name and a 2 GiB value in a ten-byte block.
        let block = b"\xff\xff\xff\xff\xff\xff\xff\xffab";
        assert!(matches!(
            decode(block, 64),
            Err(ProtocolError::TruncatedParams { offset: 0 })
        ));
    }

    #[test]
    fn error_gives_the_offset_of_the_broken_pair() {
        let block = b"\x01\x01ab\x05\x01abc";
        let mut iter = pairs(block);
        assert!(matches!(iter.next(), Some(Ok((b"a", b"b")))));
        assert!(matches!(
            iter.next(),
            Some(Err(ProtocolError::TruncatedParams { offset: 4 }))
        ));
        assert!(iter.next().is_none(), "iteration stops after an error");
    }

    #[test]
    fn block_over_the_limit_is_refused_before_decoding() {
        let block = encoded(&[(b"A", &[b'a'; 100])]);
        assert!(matches!(
            decode(&block, 64),
            Err(ProtocolError::ParamsTooLarge { limit: 64 })
        ));
    }

    #[test]
    fn every_short_input_decodes_or_fails_without_panicking() {
        // A small exhaustive stand-in for fuzzing: all blocks of up to two
        // bytes, and three-byte blocks over an interesting alphabet.
        let alphabet = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff];
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = decode(&[a], 8);
                let _ = decode(&[a, b], 8);
            }
            for &b in &alphabet {
                for &c in &alphabet {
                    let _ = decode(&[a, b, c], 8);
                }
            }
        }
    }
}
