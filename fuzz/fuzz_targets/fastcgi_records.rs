//! Whatever bytes a peer sends on a connection: a whole connection's
//! reading (records, streams, management records) must end in a request
//! or an error, never a panic or a hang.
#![no_main]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use imgworker::fastcgi::{Connection, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Socket buffers hold far more than libFuzzer's default input size.
    let data = &data[..data.len().min(64 * 1024)];
    let (ours, mut peer) = UnixStream::pair().unwrap();
    peer.write_all(data).unwrap();
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let limits = Limits {
        io_timeout: Duration::from_millis(50),
        request_timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let mut connection = Connection::new(ours, &limits).unwrap();
    let _ = connection.read_request();
});
