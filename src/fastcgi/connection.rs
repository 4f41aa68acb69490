//! One accepted connection from the web server: read one request, write
//! one response, and let the caller close it (FastCGI 1.0 specification,
//! sections 3 to 6).
//!
//! Everything the peer sends is distrusted. Records are read into one
//! buffer of `MAX_RECORD_LEN` bytes, which any record fits whatever its
//! lengths say; PARAMS and STDIN grow only up to `Limits`; every read and
//! write gives up after `Limits::io_timeout`. A read interrupted by a
//! signal is retried: the worker checks its own flags between connections.
//!
//! Reading a whole request also has a deadline, `Limits::request_timeout`,
//! so a peer that trickles a byte every few seconds, or sends management
//! records forever, cannot hold a worker either.

use std::io::{self, Read};
use std::mem;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, send};

use super::error::is_timeout_kind;
use super::record::{self, HEADER_LEN, Header, MAX_RECORD_LEN};
use super::response::Response;
use super::{ProtocolError, Request, params};

/// How much one request may send, and how long the peer may stay silent.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of PARAMS content in one request. Default 64 KiB.
    pub max_params_bytes: usize,
    /// Bytes of STDIN content in one request; image GETs send none.
    /// Default 64 KiB.
    pub max_stdin_bytes: usize,
    /// Longest wait for one read or write to make progress; must not be
    /// zero. Default 10 s.
    pub io_timeout: Duration,
    /// Longest time from the first read of a request to its last byte.
    /// Default 30 s.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_params_bytes: 64 * 1024,
            max_stdin_bytes: 64 * 1024,
            io_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// An accepted FastCGI connection, good for one request.
pub struct Connection {
    stream: UnixStream,
    limits: Limits,
    /// Bytes read and not yet parsed are `input[start..end]`.
    input: Box<[u8]>,
    start: usize,
    end: usize,
    /// When reading the current request must be over.
    deadline: Option<Instant>,
}

/// A request between its BEGIN_REQUEST and the end of its last stream.
struct OpenRequest {
    id: u16,
    params: Vec<u8>,
    params_done: bool,
    stdin: Vec<u8>,
    stdin_done: bool,
}

impl Connection {
    /// Takes over an accepted stream and sets its timeouts.
    pub fn new(stream: UnixStream, limits: &Limits) -> io::Result<Connection> {
        // Timeouts only apply to a blocking socket, and some systems let an
        // accepted socket inherit O_NONBLOCK from its listener.
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(limits.io_timeout))?;
        stream.set_write_timeout(Some(limits.io_timeout))?;
        Ok(Connection {
            stream,
            limits: *limits,
            input: vec![0; MAX_RECORD_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            deadline: None,
        })
    }

    /// Reads records until one whole request has arrived: BEGIN_REQUEST,
    /// PARAMS up to its empty record, STDIN up to its empty record.
    ///
    /// Returns `Ok(None)` if the peer hangs up between records before any
    /// request began, which includes hanging up before sending a byte.
    /// Management records are answered on the way. A BEGIN_REQUEST for a
    /// second request id is refused with `FCGI_CANT_MPX_CONN` and the first
    /// request carries on; records for ids never begun are ignored.
    pub fn read_request(&mut self) -> Result<Option<Request>, ProtocolError> {
        self.deadline = Some(Instant::now() + self.limits.request_timeout);
        let mut open: Option<OpenRequest> = None;
        loop {
            let Some((header, content)) = self.next_record()? else {
                return match open {
                    None => Ok(None),
                    Some(open) => Err(ProtocolError::ClosedMidRequest {
                        request_id: open.id,
                    }),
                };
            };
            let content = &self.input[content];
            let id = header.request_id;
            let record_type = header.record_type;

            if id == record::NULL_REQUEST_ID {
                answer_management(&self.stream, record_type, content)?;
                continue;
            }

            match &mut open {
                None if record_type == record::BEGIN_REQUEST => {
                    open = Some(begin_request(&self.stream, id, content)?);
                }
                Some(request) if request.id == id => {
                    if record_type == record::ABORT_REQUEST {
                        // Section 5.4 asks for an END_REQUEST in reply; it
                        // is a courtesy, as the connection is closing.
                        let status = record::REQUEST_COMPLETE;
                        let _ = send_end_request(&self.stream, id, status);
                        return Err(ProtocolError::Aborted);
                    }
                    request.take(record_type, content, &self.limits)?;
                    if request.params_done && request.stdin_done {
                        let params = mem::take(&mut request.params);
                        let stdin = mem::take(&mut request.stdin);
                        return Request::new(id, params, stdin).map(Some);
                    }
                }
                Some(_) if record_type == record::BEGIN_REQUEST => {
                    // This connection serves one request at a time (5.1).
                    let status = record::CANT_MPX_CONN;
                    send_end_request(&self.stream, id, status)?;
                }
                // Records for requests never begun or already refused.
                _ => {}
            }
        }
    }

    /// Writes a CGI response ("Status:", `headers`, blank line, `body`) as
    /// STDOUT records, the empty STDOUT record, then END_REQUEST.
    ///
    /// A status that is not three digits, or a header that would not come
    /// out as one line, is refused with `InvalidInput` before anything is
    /// written.
    pub fn write_response(
        &mut self,
        request: &Request,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let response = Response::new(request.id(), status, headers, body)?;

        // The input buffer is idle once the request is read, and a record
        // fits it: pack the response into it, sending whenever it fills.
        self.start = 0;
        self.end = 0;
        let pieces = response.pieces();
        send_packed(&self.stream, &mut self.input, &pieces).map_err(|err| {
            if is_timeout_kind(err.kind()) {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    "timed out writing to the web server",
                )
            } else {
                err
            }
        })
    }

    /// The next whole record: its header and where its content lies in
    /// `input`. `None` if the peer hung up exactly between records.
    fn next_record(
        &mut self,
    ) -> Result<Option<(Header, Range<usize>)>, ProtocolError> {
        if !self.fill(HEADER_LEN)? {
            return if self.start == self.end {
                Ok(None)
            } else {
                Err(ProtocolError::ClosedMidRecord)
            };
        }
        let mut header = [0; HEADER_LEN];
        header.copy_from_slice(&self.input[self.start..][..HEADER_LEN]);
        let header = Header::parse(&header)?;

        if !self.fill(HEADER_LEN + header.body_len())? {
            return Err(ProtocolError::ClosedMidRecord);
        }
        let content_start = self.start + HEADER_LEN;
        let content_end = content_start + usize::from(header.content_length);
        self.start += HEADER_LEN + header.body_len();
        Ok(Some((header, content_start..content_end)))
    }

    /// Reads until `wanted` bytes are buffered; false if the peer hung up
    /// first. `wanted` is at most `MAX_RECORD_LEN`, the buffer's size.
    fn fill(&mut self, wanted: usize) -> Result<bool, ProtocolError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start + wanted > self.input.len() {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }

        while self.end - self.start < wanted {
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ProtocolError::TimedOut);
                }
                self.stream.set_read_timeout(Some(
                    left.min(self.limits.io_timeout),
                ))?;
            }
            match (&self.stream).read(&mut self.input[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(read) => self.end += read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(true)
    }
}

impl OpenRequest {
    /// Adds one record of this request's streams.
    fn take(
        &mut self,
        record_type: u8,
        content: &[u8],
        limits: &Limits,
    ) -> Result<(), ProtocolError> {
        match record_type {
            record::PARAMS if !self.params_done => {
                self.params_done = content.is_empty();
                let limit = limits.max_params_bytes;
                append_within(&mut self.params, content, limit)
                    .ok_or(ProtocolError::ParamsTooLarge { limit })
            }
            record::STDIN if !self.stdin_done => {
                self.stdin_done = content.is_empty();
                let limit = limits.max_stdin_bytes;
                append_within(&mut self.stdin, content, limit)
                    .ok_or(ProtocolError::StdinTooLarge { limit })
            }
            record::BEGIN_REQUEST => {
                Err(ProtocolError::DuplicateBeginRequest {
                    request_id: self.id,
                })
            }
            _ => Err(ProtocolError::UnexpectedRecord {
                record_type,
                request_id: self.id,
            }),
        }
    }
}

/// Appends `content` unless that would take `stream` past `limit`, growing
/// it as a `Vec` would but never beyond the limit.
fn append_within(
    stream: &mut Vec<u8>,
    content: &[u8],
    limit: usize,
) -> Option<()> {
    let len = stream.len().checked_add(content.len())?;
    if len > limit {
        return None;
    }
    if len > stream.capacity() {
        let capacity = stream.capacity().saturating_mul(2).clamp(len, limit);
        stream.reserve_exact(capacity - stream.len());
    }
    stream.extend_from_slice(content);
    Some(())
}

/// Opens a request, or refuses a role other than responder (section 5.1).
fn begin_request(
    stream: &UnixStream,
    id: u16,
    content: &[u8],
) -> Result<OpenRequest, ProtocolError> {
    let begin = record::BeginRequest::parse(content)?;
    if begin.role != record::RESPONDER {
        // The role is the error worth reporting, whether or not the
        // refusal reaches the peer.
        let _ = send_end_request(stream, id, record::UNKNOWN_ROLE);
        return Err(ProtocolError::UnsupportedRole(begin.role));
    }
    Ok(OpenRequest {
        id,
        params: Vec::new(),
        params_done: false,
        stdin: Vec::new(),
        stdin_done: false,
    })
}

/// Answers a management record (section 4): GET_VALUES with the values of
/// the names it asks for that this server knows, each once; anything else
/// with UNKNOWN_TYPE.
fn answer_management(
    stream: &UnixStream,
    record_type: u8,
    content: &[u8],
) -> Result<(), ProtocolError> {
    let mut reply = Vec::new();
    if record_type == record::GET_VALUES {
        // One connection, one request at a time: the prefork model.
        let known: [(&[u8], &[u8]); 3] = [
            (record::MAX_CONNS, b"1"),
            (record::MAX_REQS, b"1"),
            (record::MPXS_CONNS, b"0"),
        ];
        let mut answered = [false; 3];
        let mut values = Vec::new();
        for pair in params::pairs(content) {
            let (name, _) = pair?;
            if let Some(i) = known.iter().position(|&(known, _)| known == name)
                && !mem::replace(&mut answered[i], true)
            {
                params::encode(name, known[i].1, &mut values);
            }
        }
        let result = record::GET_VALUES_RESULT;
        record::push_record(&mut reply, result, 0, &values);
    } else {
        let body = record::unknown_type_body(record_type);
        record::push_record(&mut reply, record::UNKNOWN_TYPE, 0, &body);
    }
    send_all(stream, &reply).map_err(ProtocolError::from)
}

fn send_end_request(
    stream: &UnixStream,
    id: u16,
    status: u8,
) -> io::Result<()> {
    let mut reply = Vec::with_capacity(2 * HEADER_LEN);
    let body = record::end_request_body(0, status);
    record::push_record(&mut reply, record::END_REQUEST, id, &body);
    send_all(stream, &reply)
}

/// Sends `pieces` in order, copied into `buffer` and sent a bufferful at a
/// time, so a small response leaves in one `send(2)`.
fn send_packed(
    stream: &UnixStream,
    buffer: &mut [u8],
    pieces: &[&[u8]],
) -> io::Result<()> {
    let mut filled = 0;
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            if filled == buffer.len() {
                send_all(stream, buffer)?;
                filled = 0;
            }
            let len = rest.len().min(buffer.len() - filled);
            buffer[filled..][..len].copy_from_slice(&rest[..len]);
            filled += len;
            rest = &rest[len..];
        }
    }
    send_all(stream, &buffer[..filled])
}

/// Writes all of `bytes`, retrying after signals and short writes.
///
/// `MSG_NOSIGNAL` turns a peer that hung up into an `EPIPE` error instead
/// of a SIGPIPE, whatever the process has done with that signal. The price
/// is `send(2)` rather than `writev(2)`, whence `send_packed`: nix offers
/// `sendmsg` only behind its `uio` feature, which this crate does not
/// enable, and without it the choice is between copying the body (well
/// under a millisecond for a few megabytes) or two or three sends per
/// record, header, content and padding apart.
fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(sent) => bytes = &bytes[sent..],
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
