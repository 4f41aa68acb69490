//! What can go wrong while reading a request from the web server.
//!
//! Every variant ends the connection: the worker drops it, logs the message
//! on one line and waits for the next one. Nginx sees the upstream close and
//! answers its client with 502, which is the right outcome for a peer that
//! does not speak the protocol, stalls, or gives up. Errors while writing a
//! response stay plain `std::io::Error`s, since there is nothing to say
//! about them beyond what the system call said.

use std::fmt;
use std::io;

use super::record;

/// Why a request could not be read from a FastCGI connection.
#[derive(Debug)]
pub enum ProtocolError {
    /// A record header named a version other than `FCGI_VERSION_1`.
    UnsupportedVersion(u8),
    /// The peer hung up after part of a record had arrived.
    ClosedMidRecord,
    /// The peer hung up between records, before the request was whole.
    ClosedMidRequest { request_id: u16 },
    /// No byte arrived, or none could be sent, within `Limits::io_timeout`.
    TimedOut,
    /// The PARAMS stream of one request is larger than allowed.
    ParamsTooLarge { limit: usize },
    /// The STDIN stream of one request is larger than allowed.
    StdinTooLarge { limit: usize },
    /// A name-value pair claims more bytes than its block has left.
    TruncatedParams { offset: usize },
    /// A BEGIN_REQUEST record whose body is not the eight bytes of
    /// `FCGI_BeginRequestBody`.
    BadBeginRequest { content_length: u16 },
    /// A BEGIN_REQUEST asked for a role other than responder; it has been
    /// answered with `FCGI_UNKNOWN_ROLE`.
    UnsupportedRole(u16),
    /// A second BEGIN_REQUEST arrived for the request already open.
    DuplicateBeginRequest { request_id: u16 },
    /// A record the open request cannot take at this point: a stream
    /// continued after its empty record, or a type a responder never
    /// receives.
    UnexpectedRecord { record_type: u8, request_id: u16 },
    /// The web server sent FCGI_ABORT_REQUEST for the open request.
    Aborted,
    /// Reading or writing the socket failed for a reason other than a
    /// timeout.
    Io(io::Error),
}

impl ProtocolError {
    /// Whether the peer went quiet, as opposed to sending something wrong.
    pub fn is_timeout(&self) -> bool {
        match self {
            ProtocolError::TimedOut => true,
            ProtocolError::Io(err) => is_timeout_kind(err.kind()),
            _ => false,
        }
    }
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO` make a blocked call fail with `EAGAIN`,
/// which std reports as `WouldBlock`; other systems use `ETIMEDOUT`.
pub(super) fn is_timeout_kind(kind: io::ErrorKind) -> bool {
    matches!(kind, io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

impl From<io::Error> for ProtocolError {
    fn from(err: io::Error) -> ProtocolError {
        if is_timeout_kind(err.kind()) {
            ProtocolError::TimedOut
        } else {
            ProtocolError::Io(err)
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;

        match self {
            UnsupportedVersion(version) => {
                write!(f, "unsupported FastCGI version {version}")
            }
            ClosedMidRecord => {
                write!(f, "connection closed in the middle of a record")
            }
            ClosedMidRequest { request_id } => write!(
                f,
                "connection closed before request {request_id} was complete"
            ),
            TimedOut => write!(f, "timed out waiting for the web server"),
            ParamsTooLarge { limit } => {
                write!(f, "params block exceeds {limit} bytes")
            }
            StdinTooLarge { limit } => {
                write!(f, "request body exceeds {limit} bytes")
            }
            TruncatedParams { offset } => write!(
                f,
                "name-value pair at byte {offset} runs past the end \
                 of its block"
            ),
            BadBeginRequest { content_length } => write!(
                f,
                "begin-request body is {content_length} bytes, expected 8"
            ),
            UnsupportedRole(role) => write!(
                f,
                "unsupported FastCGI role {role}, only the responder \
                 role is served"
            ),
            DuplicateBeginRequest { request_id } => {
                write!(f, "request {request_id} began twice")
            }
            UnexpectedRecord { record_type, request_id } => {
                match record::type_name(*record_type) {
                    Some(name) => write!(f, "unexpected {name} record"),
                    None => write!(f, "unexpected record type {record_type}"),
                }?;
                write!(f, " for request {request_id}")
            }
            Aborted => write!(f, "request aborted by the web server"),
            Io(err) => write!(f, "web server connection: {err}"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Io(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_was_wrong_in_lower_case() {
        let version = ProtocolError::UnsupportedVersion(7);
        assert_eq!(version.to_string(), "unsupported FastCGI version 7");

        let params = ProtocolError::ParamsTooLarge { limit: 65536 };
        assert_eq!(params.to_string(), "params block exceeds 65536 bytes");

        let data = ProtocolError::UnexpectedRecord {
            record_type: record::DATA,
            request_id: 1,
        };
        assert_eq!(
            data.to_string(),
            "unexpected FCGI_DATA record for request 1"
        );

        let odd =
            ProtocolError::UnexpectedRecord { record_type: 42, request_id: 3 };
        assert_eq!(odd.to_string(), "unexpected record type 42 for request 3");
    }

    #[test]
    fn socket_timeouts_become_timed_out() {
        let would_block = io::Error::from(io::ErrorKind::WouldBlock);
        let err = ProtocolError::from(would_block);
        assert!(matches!(err, ProtocolError::TimedOut));
        assert!(err.is_timeout());
        assert_eq!(err.to_string(), "timed out waiting for the web server");
    }

    #[test]
    fn other_io_errors_keep_their_cause() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let err = ProtocolError::from(reset);
        assert!(!err.is_timeout());
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().starts_with("web server connection: "));
    }
}
