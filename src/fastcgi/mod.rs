//! The FastCGI layer between Nginx and a worker: bytes on an accepted
//! socket in, one `Request` out, one response back (FastCGI 1.0
//! specification).
//!
//! Only the responder role is played, and each connection carries exactly
//! one request: no multiplexing (`FCGI_MPXS_CONNS` is 0) and no reuse,
//! whatever the `FCGI_KEEP_CONN` flag asks. That is what a pool of
//! pre-forked, single-threaded workers can honour. A worker accepts, reads
//! one request, answers, closes; concurrency comes from having several
//! workers, and a worker stuck in one image never holds up another
//! connection's requests.
//!
//! The layers, from the bytes up:
//!
//! - `record`: record headers, fixed bodies and the specification's
//!   numbers, no I/O;
//! - `params`: name-value pairs, no I/O;
//! - `request` and `response`: a request as the worker reads it, and a
//!   response laid out as records, no I/O;
//! - `connection`: the socket, its limits and timeouts, the request loop;
//! - `error`: what ends a connection early.
//!
//! `record` and `params` are public so that fuzz targets can reach them.
//!
//! What the worker makes of a request (URL parsing, transforms, caching)
//! is not this module's business; neither is logging, which the caller
//! does in one line when it drops a connection on a `ProtocolError`.

mod connection;
mod error;
pub mod params;
pub mod record;
mod request;
mod response;

pub use connection::{Connection, Limits};
pub use error::ProtocolError;
pub use request::Request;
