//! A CGI response laid out as the FastCGI records that carry it, as an
//! ordered list of byte slices for the connection to write (FastCGI 1.0
//! specification, sections 5.3 and 6.2).
//!
//! The head ("Status:", header lines, blank line) is small and copied into
//! one buffer with its record headers. The body, which may be megabytes of
//! image, is not copied here: each record of it is a header of its own
//! followed by a slice of the caller's buffer. The stream ends with an
//! empty STDOUT record, then END_REQUEST with `FCGI_REQUEST_COMPLETE`.

use std::io;

use super::record::{self, HEADER_LEN, Header};

/// Content per STDOUT record: the largest multiple of eight that fits, so
/// only the last record of a stream needs padding.
const CHUNK_LEN: usize = record::MAX_CONTENT_LEN / 8 * 8;

/// Source of padding bytes; padding is never longer than seven.
static PADDING: [u8; 8] = [0; 8];

/// The records of one response, borrowing its body.
pub(super) struct Response<'a> {
    /// The head, framed as STDOUT records.
    head: Vec<u8>,
    /// One header per record of body, each `CHUNK_LEN` of it but the last.
    body_headers: Vec<[u8; HEADER_LEN]>,
    body: &'a [u8],
    /// The empty STDOUT record, then the whole END_REQUEST record.
    tail: [u8; 3 * HEADER_LEN],
}

impl<'a> Response<'a> {
    /// Frames a response, refusing a status or header that would not read
    /// back as the caller meant it.
    pub(super) fn new(
        request_id: u16,
        status: u16,
        headers: &[(&str, &str)],
        body: &'a [u8],
    ) -> io::Result<Response<'a>> {
        let text = head_text(status, headers)?;

        let mut head = Vec::with_capacity(text.len() + 2 * HEADER_LEN);
        for chunk in text.chunks(CHUNK_LEN) {
            record::push_record(&mut head, record::STDOUT, request_id, chunk);
        }

        let body_headers = body
            .chunks(CHUNK_LEN)
            .map(|chunk| {
                // Chunks are at most CHUNK_LEN long, which fits in a u16.
                let len = chunk.len() as u16;
                Header::new(record::STDOUT, request_id, len).encode()
            })
            .collect();

        let mut tail = [0; 3 * HEADER_LEN];
        let end_of_stdout = Header::new(record::STDOUT, request_id, 0);
        let end_request = Header::new(record::END_REQUEST, request_id, 8);
        tail[..8].copy_from_slice(&end_of_stdout.encode());
        tail[8..16].copy_from_slice(&end_request.encode());
        tail[16..].copy_from_slice(&record::end_request_body(
            0,
            record::REQUEST_COMPLETE,
        ));

        Ok(Response { head, body_headers, body, tail })
    }

    /// Every byte of the response, in order.
    pub(super) fn pieces(&self) -> Vec<&[u8]> {
        let mut pieces = Vec::with_capacity(3 * self.body_headers.len() + 2);
        pieces.push(&self.head[..]);
        for (header, chunk) in
            self.body_headers.iter().zip(self.body.chunks(CHUNK_LEN))
        {
            pieces.push(header);
            pieces.push(chunk);
            let padding = usize::from(record::padding_for(chunk.len()));
            if padding > 0 {
                pieces.push(&PADDING[..padding]);
            }
        }
        pieces.push(&self.tail);
        pieces
    }
}

/// The CGI head: a `Status:` line, the header lines, a blank line.
fn head_text(status: u16, headers: &[(&str, &str)]) -> io::Result<Vec<u8>> {
    if !(100..=999).contains(&status) {
        return Err(invalid(format!(
            "response status {status}: not a three-digit code"
        )));
    }

    let mut text = Vec::with_capacity(256);
    text.extend_from_slice(format!("Status: {status}").as_bytes());
    if let Some(reason) = reason_phrase(status) {
        text.push(b' ');
        text.extend_from_slice(reason.as_bytes());
    }
    text.extend_from_slice(b"\r\n");

    for &(name, value) in headers {
        // A line break in either would let one header pose as several.
        let name_ok = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !name_ok {
            return Err(invalid(format!(
                "response header {name:?}: not a valid header name"
            )));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(invalid(format!(
                "response header {name:?}: value contains a line break \
                 or NUL"
            )));
        }
        text.extend_from_slice(name.as_bytes());
        text.extend_from_slice(b": ");
        text.extend_from_slice(value.as_bytes());
        text.extend_from_slice(b"\r\n");
    }

    text.extend_from_slice(b"\r\n");
    Ok(text)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Reason phrases for the statuses an image server answers with. Nginx
/// supplies its own for any status sent without one.
fn reason_phrase(status: u16) -> Option<&'static str> {
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastcgi::record::split_records;

    fn written(response: &Response<'_>) -> Vec<u8> {
        response.pieces().concat()
    }

    #[test]
    fn small_response_is_head_body_empty_stdout_and_end_request() {
        let headers = [("Content-Type", "image/webp")];
        let response = Response::new(7, 200, &headers, b"RIFF").unwrap();
        let records = split_records(&written(&response));

        let types: Vec<u8> = records.iter().map(|r| r.0.record_type).collect();
        let stdout = record::STDOUT;
        assert_eq!(types, [stdout, stdout, stdout, record::END_REQUEST]);
        assert!(records.iter().all(|r| r.0.request_id == 7));
        assert_eq!(
            records[0].1,
            b"Status: 200 OK\r\nContent-Type: image/webp\r\n\r\n"
        );
        assert_eq!(records[1].1, b"RIFF");
        assert!(records[2].1.is_empty());
        assert_eq!(
            records[3].1,
            [0, 0, 0, 0, record::REQUEST_COMPLETE, 0, 0, 0]
        );
    }

    #[test]
    fn empty_body_sends_no_body_records() {
        let response = Response::new(1, 304, &[], b"").unwrap();
        let records = split_records(&written(&response));
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].1, b"Status: 304 Not Modified\r\n\r\n");
    }

    #[test]
    fn status_without_a_known_reason_goes_out_bare() {
        let response = Response::new(1, 299, &[], b"").unwrap();
        let records = split_records(&written(&response));
        assert_eq!(records[0].1, b"Status: 299\r\n\r\n");
    }

    #[test]
    fn body_is_split_into_records_of_at_most_65535_bytes() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let response = Response::new(1, 200, &[], &body).unwrap();
        let records = split_records(&written(&response));

        let body_records = &records[1..records.len() - 2];
        assert_eq!(body_records.len(), 4);
        assert!(body_records.iter().all(|r| r.1.len() <= 65535));
        let joined: Vec<u8> =
            body_records.iter().flat_map(|r| r.1.clone()).collect();
        assert_eq!(joined, body);
    }

    #[test]
    fn header_value_with_a_line_break_is_refused() {
        let headers = [("X-Note", "a\r\nSet-Cookie: b")];
        let err = Response::new(1, 200, &headers, b"").err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            err.to_string(),
            "response header \"X-Note\": value contains a line break or NUL"
        );
    }

    #[test]
    fn header_name_with_a_colon_or_space_is_refused() {
        for name in ["", "X:Y", "X Y"] {
            let headers = [(name, "v")];
            assert!(Response::new(1, 200, &headers, b"").is_err());
        }
    }

    #[test]
    fn status_outside_three_digits_is_refused() {
        for status in [0, 99, 1000] {
            assert!(Response::new(1, status, &[], b"").is_err());
        }
    }
}
