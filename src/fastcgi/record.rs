//! FastCGI records as bytes: the eight-byte header every record opens
//! with, the numbers the specification gives record types, roles and
//! statuses, and the fixed-size bodies this server reads or writes
//! (FastCGI 1.0 specification, sections 3.3, 4, 5 and 8).
//!
//! Nothing here does I/O, and nothing trusts a length: `Header::parse`
//! checks only what eight bytes can tell, and the reader decides what to do
//! with the lengths it reports. Every record fits in `MAX_RECORD_LEN` bytes
//! by construction, which is what lets the connection read into one buffer
//! of that size whatever the peer claims.

use super::ProtocolError;

/// The only protocol version there is (`FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Bytes in a record header (`FCGI_HEADER_LEN`).
pub const HEADER_LEN: usize = 8;
/// The most content one record carries; its length field has 16 bits.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;
/// The most padding one record carries; its length field has 8 bits.
pub const MAX_PADDING_LEN: usize = u8::MAX as usize;
/// The largest record there can be, header included.
pub const MAX_RECORD_LEN: usize =
    HEADER_LEN + MAX_CONTENT_LEN + MAX_PADDING_LEN;
/// Request id of management records (`FCGI_NULL_REQUEST_ID`).
pub const NULL_REQUEST_ID: u16 = 0;

/// `FCGI_BEGIN_REQUEST`: opens a request and names its role.
pub const BEGIN_REQUEST: u8 = 1;
/// `FCGI_ABORT_REQUEST`: the web server's client went away.
pub const ABORT_REQUEST: u8 = 2;
/// `FCGI_END_REQUEST`: the application's last word on a request.
pub const END_REQUEST: u8 = 3;
/// `FCGI_PARAMS`: the CGI environment as name-value pairs.
pub const PARAMS: u8 = 4;
/// `FCGI_STDIN`: the request body.
pub const STDIN: u8 = 5;
/// `FCGI_STDOUT`: the CGI response, head and body.
pub const STDOUT: u8 = 6;
/// `FCGI_STDERR`: text for the web server's error log.
pub const STDERR: u8 = 7;
/// `FCGI_DATA`: the filter role's second input; responders never get it.
pub const DATA: u8 = 8;
/// `FCGI_GET_VALUES`: a management query for the names it lists.
pub const GET_VALUES: u8 = 9;
/// `FCGI_GET_VALUES_RESULT`: the answer to `GET_VALUES`.
pub const GET_VALUES_RESULT: u8 = 10;
/// `FCGI_UNKNOWN_TYPE`: the answer to a management record not understood.
pub const UNKNOWN_TYPE: u8 = 11;

/// `FCGI_RESPONDER`, the only role this server plays.
pub const RESPONDER: u16 = 1;
/// `FCGI_AUTHORIZER`.
pub const AUTHORIZER: u16 = 2;
/// `FCGI_FILTER`.
pub const FILTER: u16 = 3;

/// `FCGI_KEEP_CONN`: the bit of `flags` asking to keep the connection.
pub const KEEP_CONN: u8 = 1;

/// `FCGI_REQUEST_COMPLETE`: the request was answered normally.
pub const REQUEST_COMPLETE: u8 = 0;
/// `FCGI_CANT_MPX_CONN`: a second request on a connection that takes one.
pub const CANT_MPX_CONN: u8 = 1;
/// `FCGI_OVERLOADED`: the application is out of some resource.
pub const OVERLOADED: u8 = 2;
/// `FCGI_UNKNOWN_ROLE`: the application does not play the role asked for.
pub const UNKNOWN_ROLE: u8 = 3;

/// `GET_VALUES` name: how many connections the application accepts at
/// once (section 4.1).
pub const MAX_CONNS: &[u8] = b"FCGI_MAX_CONNS";
/// `GET_VALUES` name: how many requests it serves at once.
pub const MAX_REQS: &[u8] = b"FCGI_MAX_REQS";
/// `GET_VALUES` name: "1" if it multiplexes requests on one connection.
pub const MPXS_CONNS: &[u8] = b"FCGI_MPXS_CONNS";

/// The specification's name for a record type, for messages.
pub fn type_name(record_type: u8) -> Option<&'static str> {
    let name = match record_type {
        BEGIN_REQUEST => "FCGI_BEGIN_REQUEST",
        ABORT_REQUEST => "FCGI_ABORT_REQUEST",
        END_REQUEST => "FCGI_END_REQUEST",
        PARAMS => "FCGI_PARAMS",
        STDIN => "FCGI_STDIN",
        STDOUT => "FCGI_STDOUT",
        STDERR => "FCGI_STDERR",
        DATA => "FCGI_DATA",
        GET_VALUES => "FCGI_GET_VALUES",
        GET_VALUES_RESULT => "FCGI_GET_VALUES_RESULT",
        UNKNOWN_TYPE => "FCGI_UNKNOWN_TYPE",
        _ => return None,
    };
    Some(name)
}

/// A record header with its version checked (`FCGI_Header`, section 3.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub record_type: u8,
    pub request_id: u16,
    pub content_length: u16,
    pub padding_length: u8,
}

impl Header {
    /// A header for `content_length` bytes of content, padded so that the
    /// whole record is a multiple of eight bytes as section 3.3 advises.
    pub fn new(record_type: u8, request_id: u16, content_length: u16) -> Self {
        Header {
            record_type,
            request_id,
            content_length,
            padding_length: padding_for(usize::from(content_length)),
        }
    }

    /// Reads a header, refusing any version but 1.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Header, ProtocolError> {
        let [version, record_type, id_hi, id_lo, len_hi, len_lo, padding, _] =
            *bytes;
        if version != VERSION_1 {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        Ok(Header {
            record_type,
            request_id: u16::from_be_bytes([id_hi, id_lo]),
            content_length: u16::from_be_bytes([len_hi, len_lo]),
            padding_length: padding,
        })
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_length.to_be_bytes();
        [
            VERSION_1,
            self.record_type,
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_length,
            0,
        ]
    }

    /// Bytes that follow the header: content, then padding.
    pub fn body_len(&self) -> usize {
        usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

/// Padding that brings `content_len` up to a multiple of eight.
pub fn padding_for(content_len: usize) -> u8 {
    // The result is below 8, so it always fits.
    ((8 - content_len % 8) % 8) as u8
}

/// The body of a BEGIN_REQUEST record (`FCGI_BeginRequestBody`, 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeginRequest {
    pub role: u16,
    pub flags: u8,
}

impl BeginRequest {
    pub fn parse(content: &[u8]) -> Result<BeginRequest, ProtocolError> {
        match *content {
            [role_hi, role_lo, flags, _, _, _, _, _] => Ok(BeginRequest {
                role: u16::from_be_bytes([role_hi, role_lo]),
                flags,
            }),
            _ => Err(ProtocolError::BadBeginRequest {
                // A record's content is never longer than u16::MAX.
                content_length: content.len().min(MAX_CONTENT_LEN) as u16,
            }),
        }
    }

    /// Whether the web server means to reuse the connection. This server
    /// closes it after one request either way; Nginx copes with that.
    pub fn keep_conn(&self) -> bool {
        self.flags & KEEP_CONN != 0
    }
}

/// The body of an END_REQUEST record (`FCGI_EndRequestBody`, 5.5).
pub fn end_request_body(app_status: u32, protocol_status: u8) -> [u8; 8] {
    let [a, b, c, d] = app_status.to_be_bytes();
    [a, b, c, d, protocol_status, 0, 0, 0]
}

/// The body of an UNKNOWN_TYPE record (`FCGI_UnknownTypeBody`, 4.2).
pub fn unknown_type_body(record_type: u8) -> [u8; 8] {
    [record_type, 0, 0, 0, 0, 0, 0, 0]
}

/// Appends one whole record, header, content and padding, to `out`.
///
/// # Panics
///
/// If `content` is longer than `MAX_CONTENT_LEN`; callers split longer
/// streams into several records.
pub fn push_record(
    out: &mut Vec<u8>,
    record_type: u8,
    request_id: u16,
    content: &[u8],
) {
    let content_length = u16::try_from(content.len())
        .expect("record content longer than 65535 bytes");
    let header = Header::new(record_type, request_id, content_length);
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(content);
    out.resize(out.len() + usize::from(header.padding_length), 0);
}

/// Splits a stream of well-formed records into headers and contents, for
/// tests that check what was written. Panics on anything malformed.
#[cfg(test)]
pub(super) fn split_records(mut bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let header = Header::parse(bytes[..HEADER_LEN].try_into().unwrap())
            .expect("record header");
        let content_end = HEADER_LEN + usize::from(header.content_length);
        let record_end = HEADER_LEN + header.body_len();
        assert!(bytes[content_end..record_end].iter().all(|&b| b == 0));
        records.push((header, bytes[HEADER_LEN..content_end].to_vec()));
        bytes = &bytes[record_end..];
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_through_its_eight_bytes() {
        let header = Header::new(STDOUT, 0x1234, 0xabcd);
        let bytes = header.encode();
        assert_eq!(bytes, [1, 6, 0x12, 0x34, 0xab, 0xcd, 3, 0]);
        assert_eq!(Header::parse(&bytes).unwrap(), header);
    }

    #[test]
    fn any_version_but_one_is_refused() {
        for version in [0, 2, 7, b'G', 255] {
            let bytes = [version, PARAMS, 0, 1, 0, 0, 0, 0];
            assert!(matches!(
                Header::parse(&bytes),
                Err(ProtocolError::UnsupportedVersion(v)) if v == version
            ));
        }
    }

    #[test]
    fn header_of_an_unknown_type_still_parses() {
        // Management records of unknown types must be answered with
        // UNKNOWN_TYPE, so the header itself has to be readable.
        let header = Header::parse(&[1, 200, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(header.record_type, 200);
        assert_eq!(type_name(200), None);
    }

    #[test]
    fn largest_record_fits_the_declared_maximum() {
        let header = Header::parse(&[1, STDIN, 0, 1, 255, 255, 255, 0]);
        assert_eq!(HEADER_LEN + header.unwrap().body_len(), MAX_RECORD_LEN);
    }

    #[test]
    fn padding_rounds_content_up_to_eight() {
        assert_eq!(padding_for(0), 0);
        assert_eq!(padding_for(1), 7);
        assert_eq!(padding_for(8), 0);
        assert_eq!(padding_for(MAX_CONTENT_LEN), 1);
    }

    #[test]
    fn begin_request_body_gives_role_and_flags() {
        let begin = BeginRequest::parse(&[0, 1, 1, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(begin.role, RESPONDER);
        assert!(begin.keep_conn());
    }

    #[test]
    fn begin_request_body_of_the_wrong_size_is_an_error_not_a_panic() {
        for len in [0, 5, 9, 300] {
            let content = vec![0; len];
            assert!(matches!(
                BeginRequest::parse(&content),
                Err(ProtocolError::BadBeginRequest { content_length })
                    if usize::from(content_length) == len
            ));
        }
    }

    #[test]
    fn end_request_body_is_big_endian_status_then_protocol_status() {
        let body = end_request_body(0x0102_0304, CANT_MPX_CONN);
        assert_eq!(body, [1, 2, 3, 4, 1, 0, 0, 0]);
    }

    #[test]
    fn pushed_records_are_padded_and_split_back() {
        let mut out = Vec::new();
        push_record(&mut out, STDOUT, 1, b"hello");
        push_record(&mut out, STDOUT, 1, b"");
        assert_eq!(out.len(), 8 + 8 + 8);

        let records = split_records(&out);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].1, b"hello");
        assert_eq!(records[1].0.content_length, 0);
    }
}
