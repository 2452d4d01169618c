//! Request bodies: kept in memory up to the spill threshold, in an
//! unlinked temp file past it, refused past `max_body` with the connection
//! kept in sync.

use super::*;

#[test]
fn empty_body_is_empty() {
    let request = connection(request_bytes(1, false, &[("CONTENT_LENGTH", "0")], b""))
        .read_request()
        .unwrap()
        .unwrap();
    assert!(matches!(request.body, Body::Empty));
    assert_eq!(body_len(&request.body), 0);
}

#[test]
fn body_is_read_to_the_end_of_stdin_whatever_content_length_says() {
    let input = request_bytes(1, false, &[("CONTENT_LENGTH", "3")], b"longer than three");
    let request = connection(input).read_request().unwrap().unwrap();
    assert_eq!(request.body.into_bytes(), b"longer than three");
}

#[test]
fn body_up_to_the_spill_threshold_stays_in_memory() {
    let limits = Limits {
        spill_threshold: 16,
        ..Limits::default()
    };
    let request = connection_with(request_bytes(1, false, &[], &[b'x'; 16]), limits)
        .read_request()
        .unwrap()
        .unwrap();
    assert!(matches!(request.body, Body::Memory(ref bytes) if bytes.len() == 16));
}

#[test]
fn body_above_the_spill_threshold_goes_to_an_unlinked_temp_file() {
    let limits = Limits {
        spill_threshold: 1000,
        ..Limits::default()
    };
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    for chunk in body.chunks(999) {
        input.extend(rec(RecordType::Stdin, 1, chunk));
    }
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    let request = connection_with(input, limits)
        .read_request()
        .unwrap()
        .unwrap();
    assert_eq!(body_len(&request.body), body.len() as u64);
    let Body::File(file) = &request.body else {
        panic!("expected a file body, got {:?}", request.body);
    };
    let link = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
    assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    assert_eq!(request.body.into_bytes(), body);
}

#[test]
fn temp_file_fallback_leaves_nothing_on_disk() {
    let dir = env::temp_dir();
    let mut file = create_unlinked_named(&dir).unwrap();
    let link = fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).unwrap();
    assert!(link.to_string_lossy().ends_with("(deleted)"), "{link:?}");
    file.write_all(b"spilled").unwrap();
    file.rewind().unwrap();
    let mut back = String::new();
    file.read_to_string(&mut back).unwrap();
    assert_eq!(back, "spilled");
}

#[test]
fn body_over_max_body_is_discarded_and_the_connection_stays_in_sync() {
    let limits = Limits {
        max_body: 10,
        spill_threshold: 4,
        ..Limits::default()
    };
    let mut input = begin(1, ROLE_RESPONDER, KEEP_CONN);
    encode_params(&mut input, 1, &[]);
    for chunk in [&b"12345"[..], b"67890", b"abcdef", b"more"] {
        input.extend(rec(RecordType::Stdin, 1, chunk));
    }
    encode_stream_end(&mut input, RecordType::Stdin, 1);
    input.extend(request_bytes(2, false, &[], b"0123456789"));
    let mut conn = connection_with(input, limits);
    let first = conn.read_request().unwrap().unwrap();
    assert!(matches!(
        first.body_refused,
        Some(BodyRefused::TooLarge { limit: 10, seen }) if seen > 10
    ));
    assert!(body_len(&first.body) == 0);
    let second = conn.read_request().unwrap().unwrap();
    assert_eq!(second.id, 2);
    assert!(second.body_refused.is_none());
    assert_eq!(second.body.into_bytes(), b"0123456789");
}

#[test]
fn max_body_zero_means_unlimited() {
    let limits = Limits {
        max_body: 0,
        ..Limits::default()
    };
    let body = vec![1; 300_000];
    let request = connection_with(request_bytes(1, false, &[], &body), limits)
        .read_request()
        .unwrap()
        .unwrap();
    assert!(request.body_refused.is_none());
    assert_eq!(body_len(&request.body), 300_000);
}
