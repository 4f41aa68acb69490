//! Tests of a whole connection: a real socket pair, the peer's side built
//! record by record by hand, as Nginx would send them or as it never
//! should.

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Instant;

use super::*;
use crate::fastcgi::record::split_records;

fn record(record_type: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    record::push_record(&mut out, record_type, id, content);
    out
}

fn begin(id: u16, role: u16) -> Vec<u8> {
    let [hi, lo] = role.to_be_bytes();
    record(record::BEGIN_REQUEST, id, &[hi, lo, 0, 0, 0, 0, 0, 0])
}

fn pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in pairs {
        params::encode(name, value, &mut block);
    }
    block
}

/// A record with as much padding as the peer likes, not only up to eight.
fn padded_record(
    record_type: u8,
    id: u16,
    content: &[u8],
    padding_length: u8,
) -> Vec<u8> {
    let header = Header {
        record_type,
        request_id: id,
        content_length: content.len().try_into().unwrap(),
        padding_length,
    };
    let padding = vec![0; padding_length.into()];
    [&header.encode()[..], content, &padding].concat()
}

/// A request for `/a.jpg` with its params in one record.
fn whole_request(id: u16) -> Vec<u8> {
    let block = pairs(&[(b"DOCUMENT_URI", b"/a.jpg")]);
    [
        begin(id, record::RESPONDER),
        record(record::PARAMS, id, &block),
        record(record::PARAMS, id, b""),
        record(record::STDIN, id, b""),
    ]
    .concat()
}

fn short_limits() -> Limits {
    Limits { io_timeout: Duration::from_millis(200), ..Limits::default() }
}

/// A connection whose peer sends `bytes` from another thread and then,
/// if `hang_up`, stops writing. The peer's end is returned for reading
/// what the connection answered.
fn fed(
    bytes: &[u8],
    hang_up: bool,
    limits: &Limits,
) -> (Connection, UnixStream) {
    let (ours, peer) = UnixStream::pair().unwrap();
    let writer = peer.try_clone().unwrap();
    let bytes = bytes.to_vec();
    thread::spawn(move || {
        // Fails once the connection under test stops reading early.
        let _ = (&writer).write_all(&bytes);
        if hang_up {
            let _ = writer.shutdown(Shutdown::Write);
        }
    });
    (Connection::new(ours, limits).unwrap(), peer)
}

/// Every record the connection wrote, once it is closed.
fn answers(
    connection: Connection,
    mut peer: UnixStream,
) -> Vec<(Header, Vec<u8>)> {
    drop(connection);
    let mut bytes = Vec::new();
    peer.read_to_end(&mut bytes).unwrap();
    split_records(&bytes)
}

#[test]
fn whole_request_with_params_split_across_two_records_is_read() {
    let block = pairs(&[
        (b"REQUEST_METHOD", b"GET"),
        (b"DOCUMENT_URI", b"/img/w_100/a.jpg"),
        (b"HTTP_X_RAW", b"\xff\xfe"),
    ]);
    // Pairs may straddle records (section 3.4); split inside one.
    let (first, second) = block.split_at(20);
    let bytes = [
        begin(1, record::RESPONDER),
        record(record::PARAMS, 1, first),
        record(record::PARAMS, 1, second),
        record(record::PARAMS, 1, b""),
        record(record::STDIN, 1, b""),
    ]
    .concat();
    let (mut connection, _peer) = fed(&bytes, false, &short_limits());

    let request = connection.read_request().unwrap().unwrap();
    assert_eq!(request.id(), 1);
    assert_eq!(request.param_str("DOCUMENT_URI"), Some("/img/w_100/a.jpg"));
    assert_eq!(request.param("HTTP_X_RAW"), Some(&b"\xff\xfe"[..]));
    assert_eq!(request.params().count(), 3);
    assert!(request.stdin().is_empty());
}

#[test]
fn request_arriving_a_byte_at_a_time_is_read() {
    let (ours, peer) = UnixStream::pair().unwrap();
    let bytes = whole_request(6);
    thread::spawn(move || {
        for byte in bytes {
            let _ = (&peer).write_all(&[byte]);
        }
    });
    let mut connection = Connection::new(ours, &short_limits()).unwrap();
    assert_eq!(connection.read_request().unwrap().unwrap().id(), 6);
}

#[test]
fn largest_records_the_format_allows_are_read_whole() {
    // Full content and 255 bytes of padding: records that fill the input
    // buffer exactly, arriving behind others so the buffer must shift.
    let value = vec![b'c'; 150_000];
    let block = pairs(&[(b"HTTP_COOKIE", &value)]);
    let mut bytes = begin(1, record::RESPONDER);
    for chunk in block.chunks(record::MAX_CONTENT_LEN) {
        bytes.extend(padded_record(record::PARAMS, 1, chunk, 255));
    }
    bytes.extend(record(record::PARAMS, 1, b""));
    bytes.extend(record(record::STDIN, 1, b""));
    let limits = Limits { max_params_bytes: 200_000, ..short_limits() };
    let (mut connection, _peer) = fed(&bytes, false, &limits);

    let request = connection.read_request().unwrap().unwrap();
    assert_eq!(request.param("HTTP_COOKIE"), Some(&value[..]));
}

#[test]
fn peer_that_hangs_up_before_a_byte_means_no_request() {
    let (mut connection, _peer) = fed(b"", true, &short_limits());
    assert!(connection.read_request().unwrap().is_none());
}

#[test]
fn get_values_is_answered_with_only_the_names_asked_for() {
    let query = pairs(&[
        (record::MPXS_CONNS, b""),
        (b"FCGI_SOMETHING_ELSE", b""),
        (record::MAX_CONNS, b""),
        (record::MPXS_CONNS, b""),
    ]);
    let bytes =
        [record(record::GET_VALUES, 0, &query), whole_request(1)].concat();
    let (mut connection, peer) = fed(&bytes, false, &short_limits());

    let request = connection.read_request().unwrap();
    assert_eq!(request.unwrap().id(), 1, "reading carries on after");

    let answers = answers(connection, peer);
    assert_eq!(answers.len(), 1);
    let (header, content) = &answers[0];
    assert_eq!(header.record_type, record::GET_VALUES_RESULT);
    assert_eq!(header.request_id, 0);
    let values = params::decode(content, 1024).unwrap();
    assert_eq!(
        values,
        [(record::MPXS_CONNS, &b"0"[..]), (record::MAX_CONNS, &b"1"[..])]
    );
}

#[test]
fn other_management_records_get_unknown_type() {
    let bytes = record(42, 0, b"whatever");
    let (mut connection, peer) = fed(&bytes, true, &short_limits());
    assert!(connection.read_request().unwrap().is_none());

    let answers = answers(connection, peer);
    assert_eq!(answers[0].0.record_type, record::UNKNOWN_TYPE);
    assert_eq!(answers[0].1, [42, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn garbage_first_record_is_an_unsupported_version() {
    let bytes = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let (mut connection, _peer) = fed(bytes, false, &short_limits());
    let err = connection.read_request().unwrap_err();
    assert_eq!(err.to_string(), "unsupported FastCGI version 71");
}

#[test]
fn peer_that_hangs_up_mid_record_is_an_error() {
    let mut cut_content = begin(1, record::RESPONDER);
    cut_content.extend_from_slice(&[1, record::PARAMS, 0, 1, 0, 100, 4, 0]);
    cut_content.extend_from_slice(b"0123456789");
    let cut_header = [1, record::BEGIN_REQUEST, 0];

    for bytes in [&cut_content[..], &cut_header[..]] {
        let (mut connection, _peer) = fed(bytes, true, &short_limits());
        assert!(matches!(
            connection.read_request(),
            Err(ProtocolError::ClosedMidRecord)
        ));
    }
}

#[test]
fn peer_that_hangs_up_between_records_of_a_request_is_an_error() {
    let bytes =
        [begin(3, record::RESPONDER), record(record::PARAMS, 3, b"")].concat();
    let (mut connection, _peer) = fed(&bytes, true, &short_limits());
    let err = connection.read_request().unwrap_err();
    assert!(matches!(err, ProtocolError::ClosedMidRequest { request_id: 3 }));
}

#[test]
fn silent_peer_times_out_instead_of_blocking() {
    let half_a_request = &whole_request(1)[..13];
    for bytes in [&b""[..], half_a_request] {
        let (mut connection, _peer) = fed(bytes, false, &short_limits());
        let started = Instant::now();
        let err = connection.read_request().unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn params_block_over_the_limit_is_refused() {
    let chunk = vec![b'x'; 40_000];
    let bytes = [
        begin(1, record::RESPONDER),
        record(record::PARAMS, 1, &chunk),
        record(record::PARAMS, 1, &chunk),
    ]
    .concat();
    let (mut connection, _peer) = fed(&bytes, false, &Limits::default());
    let err = connection.read_request().unwrap_err();
    assert_eq!(err.to_string(), "params block exceeds 65536 bytes");
}

#[test]
fn stdin_over_the_limit_is_refused() {
    let limits = Limits { max_stdin_bytes: 16, ..short_limits() };
    let mut bytes = whole_request(1);
    bytes.truncate(bytes.len() - HEADER_LEN);
    bytes.extend(record(record::STDIN, 1, &[0; 17]));
    let (mut connection, _peer) = fed(&bytes, false, &limits);
    assert!(matches!(
        connection.read_request(),
        Err(ProtocolError::StdinTooLarge { limit: 16 })
    ));
}

#[test]
fn broken_name_value_pair_fails_the_request() {
    let bytes = [
        begin(1, record::RESPONDER),
        record(record::PARAMS, 1, b"\x09\x00ABC"),
        record(record::PARAMS, 1, b""),
        record(record::STDIN, 1, b""),
    ]
    .concat();
    let (mut connection, _peer) = fed(&bytes, false, &short_limits());
    assert!(matches!(
        connection.read_request(),
        Err(ProtocolError::TruncatedParams { offset: 0 })
    ));
}

#[test]
fn role_other_than_responder_gets_unknown_role() {
    let bytes = begin(5, record::AUTHORIZER);
    let (mut connection, peer) = fed(&bytes, false, &short_limits());
    assert!(matches!(
        connection.read_request(),
        Err(ProtocolError::UnsupportedRole(record::AUTHORIZER))
    ));

    let answers = answers(connection, peer);
    assert_eq!(answers[0].0.record_type, record::END_REQUEST);
    assert_eq!(answers[0].0.request_id, 5);
    assert_eq!(answers[0].1[4], record::UNKNOWN_ROLE);
}

#[test]
fn second_request_gets_cant_mpx_conn_and_the_first_carries_on() {
    let first = whole_request(1);
    let (begin_first, rest_of_first) = first.split_at(2 * HEADER_LEN);
    let second = pairs(&[(b"DOCUMENT_URI", b"/other.png")]);
    let bytes = [
        begin_first,
        &begin(2, record::RESPONDER),
        &record(record::PARAMS, 2, &second),
        rest_of_first,
    ]
    .concat();
    let (mut connection, peer) = fed(&bytes, false, &short_limits());

    let request = connection.read_request().unwrap().unwrap();
    assert_eq!(request.id(), 1);
    assert_eq!(request.param_str("DOCUMENT_URI"), Some("/a.jpg"));

    let answers = answers(connection, peer);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0.record_type, record::END_REQUEST);
    assert_eq!(answers[0].0.request_id, 2);
    assert_eq!(answers[0].1[4], record::CANT_MPX_CONN);
}

#[test]
fn records_for_requests_never_begun_are_ignored() {
    let bytes = [
        record(record::STDIN, 9, b"stray"),
        record(record::ABORT_REQUEST, 9, b""),
        whole_request(1),
    ]
    .concat();
    let (mut connection, _peer) = fed(&bytes, false, &short_limits());
    assert_eq!(connection.read_request().unwrap().unwrap().id(), 1);
}

#[test]
fn abort_of_the_open_request_is_an_error() {
    let bytes =
        [begin(1, record::RESPONDER), record(record::ABORT_REQUEST, 1, b"")]
            .concat();
    let (mut connection, peer) = fed(&bytes, false, &short_limits());
    let err = connection.read_request().unwrap_err();
    assert!(matches!(err, ProtocolError::Aborted));

    let answers = answers(connection, peer);
    assert_eq!(answers[0].0.record_type, record::END_REQUEST);
}

#[test]
fn stream_that_goes_on_after_its_end_is_an_error() {
    let bytes = [
        begin(1, record::RESPONDER),
        record(record::PARAMS, 1, b""),
        record(record::PARAMS, 1, b"\x01\x01ab"),
    ]
    .concat();
    let (mut connection, _peer) = fed(&bytes, false, &short_limits());
    let err = connection.read_request().unwrap_err();
    assert_eq!(err.to_string(), "unexpected FCGI_PARAMS record for request 1");
}

#[test]
fn response_larger_than_one_record_is_framed_and_ends_the_request() {
    let (mut connection, peer) =
        fed(&whole_request(4), false, &short_limits());
    let request = connection.read_request().unwrap().unwrap();

    // The peer reads while the response is written, as Nginx would.
    let mut reader = peer.try_clone().unwrap();
    let received = thread::spawn(move || {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).map(|_| bytes)
    });
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let headers = [("Content-Type", "image/jpeg"), ("X-Cache", "miss")];
    connection.write_response(&request, 200, &headers, &body).unwrap();
    drop(connection);

    let records = split_records(&received.join().unwrap().unwrap());
    let (last, stdout) = records.split_last().unwrap();
    assert!(stdout.iter().all(|(h, _)| h.record_type == record::STDOUT));
    assert!(records.iter().all(|(h, _)| h.request_id == 4));
    assert!(records.iter().all(|(_, c)| c.len() <= 65535));
    assert!(stdout.last().unwrap().1.is_empty(), "stdout is closed");

    let text: Vec<u8> = stdout.iter().flat_map(|(_, c)| c.clone()).collect();
    let head = b"Status: 200 OK\r\nContent-Type: image/jpeg\r\n\
                 X-Cache: miss\r\n\r\n";
    assert_eq!(&text[..head.len()], head);
    assert_eq!(&text[head.len()..], body);

    assert_eq!(last.0.record_type, record::END_REQUEST);
    assert_eq!(last.1, record::end_request_body(0, record::REQUEST_COMPLETE));
}

#[test]
fn peer_that_hangs_up_before_the_response_gets_an_error() {
    let (ours, peer) = UnixStream::pair().unwrap();
    (&peer).write_all(&whole_request(1)).unwrap();
    drop(peer);
    let mut connection = Connection::new(ours, &short_limits()).unwrap();
    let request = connection.read_request().unwrap().unwrap();

    let body = vec![0; 100_000];
    let err = connection.write_response(&request, 200, &[], &body);
    assert_eq!(err.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
}

#[test]
fn peer_that_stops_reading_makes_the_write_time_out() {
    let (mut connection, _peer) =
        fed(&whole_request(1), false, &short_limits());
    let request = connection.read_request().unwrap().unwrap();

    // Far more than a socket buffer holds, and nobody reads it.
    let body = vec![0; 8 << 20];
    let started = Instant::now();
    let err = connection.write_response(&request, 200, &[], &body);
    let err = err.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(err.to_string(), "timed out writing to the web server");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn peer_that_trickles_bytes_meets_the_request_deadline() {
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let limits = Limits {
        request_timeout: Duration::from_millis(400),
        ..short_limits()
    };
    let mut connection = Connection::new(ours, &limits).unwrap();
    // One byte every 100 ms: each read makes progress, the whole never
    // arrives.
    let trickle = thread::spawn(move || {
        for byte in whole_request(1) {
            if peer.write_all(&[byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let started = Instant::now();
    let err = connection.read_request().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(connection);
    trickle.join().unwrap();
}
