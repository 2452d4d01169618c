//! Input the protocol forbids: an error naming the problem (the one log
//! line of a dropped connection), never a panic.

use super::*;

#[test]
fn params_over_max_params_are_an_error() {
    let limits = Limits {
        max_params: 100,
        ..Limits::default()
    };
    let value = "v".repeat(200);
    let mut conn = connection_with(request_bytes(1, false, &[("BIG", &value)], b""), limits);
    assert_eq!(
        protocol_error(conn.read_request()),
        ProtocolError::ParamsTooLarge {
            request_id: 1,
            limit: 100
        }
    );
}

#[test]
fn bad_version_is_an_error() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input[0] = 2;
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::BadVersion(2)
    );
}

#[test]
fn input_ending_mid_header_is_an_error() {
    let mut input = request_bytes(1, true, &[], b"");
    input.extend_from_slice(&[1, 1, 0]);
    let mut conn = connection(input);
    assert!(conn.read_request().unwrap().is_some());
    assert_eq!(
        protocol_error(conn.read_request()),
        ProtocolError::TruncatedHeader { got: 3 }
    );
}

#[test]
fn input_ending_mid_content_is_an_error() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input.extend(rec(
        RecordType::Params,
        1,
        &name_values(&[("NAME", "value")]),
    ));
    input.truncate(input.len() - 4);
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::TruncatedRecord {
            record_type: RecordType::Params,
            request_id: 1,
            got: 20,
            expected: 24
        }
    );
}

#[test]
fn input_ending_mid_request_is_an_incomplete_request() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::IncompleteRequest {
            request_id: 1,
            missing: "FCGI_STDIN"
        }
    );
}

#[test]
fn unexpected_records_for_the_current_request_are_errors() {
    let cases = [
        rec(RecordType::Stdout, 1, b"x"),
        rec(RecordType::Data, 1, b"x"),
        rec(RecordType::Other(99), 1, b""),
        begin(1, ROLE_RESPONDER, 0),
    ];
    for case in cases {
        let mut input = begin(1, ROLE_RESPONDER, 0);
        input.extend_from_slice(&case);
        let error = protocol_error(connection(input).read_request());
        assert!(
            matches!(error, ProtocolError::UnexpectedRecord { request_id: 1, .. }),
            "{error}"
        );
    }
}

#[test]
fn records_after_the_end_of_their_stream_are_errors() {
    let mut input = begin(1, ROLE_RESPONDER, 0);
    encode_params(&mut input, 1, &[]);
    input.extend(rec(RecordType::Params, 1, b"\x01\x01ab"));
    assert_eq!(
        protocol_error(connection(input).read_request()),
        ProtocolError::UnexpectedRecord {
            record_type: RecordType::Params,
            request_id: 1
        }
    );
}

#[test]
fn malformed_begin_request_and_params_are_errors() {
    let input = rec(RecordType::BeginRequest, 1, &[0, 1, 0]);
    assert!(matches!(
        protocol_error(connection(input).read_request()),
        ProtocolError::BadBodyLength { length: 3, .. }
    ));
    let mut input = begin(1, ROLE_RESPONDER, 0);
    input.extend(rec(RecordType::Params, 1, &[5, 5, b'a']));
    input.extend(rec(RecordType::Params, 1, b""));
    input.extend(rec(RecordType::Stdin, 1, b""));
    assert!(matches!(
        protocol_error(connection(input).read_request()),
        ProtocolError::NameValueOverflow { .. }
    ));
}

#[test]
fn garbage_input_is_an_error_never_a_panic() {
    let mut seed: u32 = 0x1234_5678;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 24) as u8
    };
    for round in 0..2000 {
        let len = usize::from(next()) * 4;
        let mut input: Vec<u8> = (0..len).map(|_| next()).collect();
        if round % 2 == 0 {
            // Keep the version byte valid so parsing goes deeper.
            for (i, byte) in input.iter_mut().enumerate() {
                if i % 16 == 0 {
                    *byte = 1;
                }
            }
        }
        let mut conn = connection(input);
        for _ in 0..100 {
            match conn.read_request() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    assert!(connection(b"GET / HTTP/1.0\r\n\r\n".to_vec())
        .read_request()
        .is_err());
}
