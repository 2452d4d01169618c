//! The wire format against literal bytes: every framing rule, and what
//! short or inconsistent input becomes.

use super::*;

fn pair(name: &[u8], value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    (name.to_vec(), value.to_vec())
}

/// Splits encoded bytes back into (header, content) records, checking
/// that the padding is zeroed.
fn split_records(mut bytes: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut records = Vec::new();
    while !bytes.is_empty() {
        let header = Header::parse(bytes).expect("valid header");
        let content_end = HEADER_LEN + usize::from(header.content_length);
        assert!(bytes[content_end..header.record_len()]
            .iter()
            .all(|&b| b == 0));
        records.push((header, bytes[HEADER_LEN..content_end].to_vec()));
        bytes = &bytes[header.record_len()..];
    }
    records
}

#[test]
fn record_type_round_trips_every_byte() {
    for byte in 0..=u8::MAX {
        assert_eq!(RecordType::from_u8(byte).as_u8(), byte);
    }
    assert_eq!(RecordType::from_u8(1), RecordType::BeginRequest);
    assert_eq!(RecordType::from_u8(11), RecordType::UnknownType);
    assert_eq!(RecordType::from_u8(0), RecordType::Other(0));
    assert_eq!(RecordType::from_u8(12), RecordType::Other(12));
}

#[test]
fn record_type_display_uses_spec_names() {
    assert_eq!(RecordType::Stdin.to_string(), "FCGI_STDIN");
    assert_eq!(RecordType::Other(42).to_string(), "record type 42");
}

#[test]
fn header_encodes_and_parses_big_endian_fields() {
    let header = Header {
        version: 1,
        record_type: RecordType::Stdout,
        request_id: 0x1234,
        content_length: 0xabcd,
        padding_length: 3,
    };
    let bytes = header.encode();
    assert_eq!(bytes, [1, 6, 0x12, 0x34, 0xab, 0xcd, 3, 0]);
    assert_eq!(Header::parse(&bytes), Ok(header));
    assert_eq!(header.record_len(), 8 + 0xabcd + 3);
}

#[test]
fn header_parse_ignores_bytes_after_the_header() {
    let mut bytes = Header::new(RecordType::Params, 7, 0).encode().to_vec();
    bytes.extend_from_slice(b"trailing");
    assert_eq!(Header::parse(&bytes).unwrap().request_id, 7);
}

#[test]
fn header_with_bad_version_is_rejected() {
    let bytes = [2, 1, 0, 1, 0, 8, 0, 0];
    assert_eq!(Header::parse(&bytes), Err(ProtocolError::BadVersion(2)));
    let http = b"GET / HTTP/1.1\r\n";
    assert_eq!(Header::parse(http), Err(ProtocolError::BadVersion(b'G')));
}

#[test]
fn short_header_is_truncated_not_a_panic() {
    for len in 0..HEADER_LEN {
        assert_eq!(
            Header::parse(&[1; HEADER_LEN][..len]),
            Err(ProtocolError::TruncatedHeader { got: len })
        );
    }
}

#[test]
fn records_are_padded_to_a_multiple_of_eight() {
    for len in 0..=17usize {
        let content = vec![0xa5; len];
        let mut out = Vec::new();
        encode_record(&mut out, RecordType::Stdout, 1, &content);
        assert_eq!(out.len() % 8, 0, "content length {len}");
        assert_eq!(out.len(), HEADER_LEN + len.div_ceil(8) * 8);
        let records = split_records(&out);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].1, content);
    }
}

#[test]
fn maximal_record_carries_65535_bytes_and_one_padding_byte() {
    let mut out = Vec::new();
    encode_record(&mut out, RecordType::Stdin, 3, &[7; MAX_CONTENT]);
    let header = Header::parse(&out).unwrap();
    assert_eq!(header.content_length, 65535);
    assert_eq!(header.padding_length, 1);
    assert_eq!(out.len(), header.record_len());
}

#[test]
fn stream_is_split_into_records_of_at_most_65535_bytes() {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    encode_stream(&mut out, RecordType::Stdout, 9, &data);
    let records = split_records(&out);
    let lengths: Vec<usize> = records.iter().map(|(_, c)| c.len()).collect();
    assert_eq!(lengths, [65535, 65535, 65535, 3395]);
    assert!(records.iter().all(|(h, _)| h.request_id == 9));
    assert_eq!(
        records
            .into_iter()
            .flat_map(|(_, c)| c)
            .collect::<Vec<u8>>(),
        data
    );
}

#[test]
fn stream_boundaries_do_not_produce_empty_records() {
    let mut out = Vec::new();
    encode_stream(&mut out, RecordType::Stdout, 1, &[]);
    assert!(out.is_empty());
    encode_stream(&mut out, RecordType::Stdout, 1, &[1; 65536]);
    let lengths: Vec<usize> = split_records(&out).iter().map(|(_, c)| c.len()).collect();
    assert_eq!(lengths, [65535, 1]);
}

#[test]
fn stream_end_is_one_empty_record() {
    let mut out = Vec::new();
    encode_stream_end(&mut out, RecordType::Params, 5);
    assert_eq!(out, [1, 4, 0, 5, 0, 0, 0, 0]);
}

#[test]
fn name_value_lengths_switch_to_four_bytes_at_128() {
    let mut out = Vec::new();
    encode_name_value(&mut out, &[b'n'; 127], b"");
    assert_eq!(&out[..2], [127, 0]);

    let mut out = Vec::new();
    encode_name_value(&mut out, &[b'n'; 128], &[b'v'; 70000]);
    assert_eq!(&out[..8], [0x80, 0, 0, 128, 0x80, 0x01, 0x11, 0x70]);
    assert_eq!(out.len(), 8 + 128 + 70000);
}

#[test]
fn name_values_round_trip_with_mixed_lengths() {
    let pairs = vec![
        pair(b"SCRIPT_FILENAME", b"/srv/www/index.pl"),
        pair(b"EMPTY", b""),
        pair(b"", b"empty name"),
        pair(&[b'N'; 300], &[b'V'; 127]),
        pair(b"HTTP_COOKIE", &[b'c'; 128]),
    ];
    let mut out = Vec::new();
    for (name, value) in &pairs {
        encode_name_value(&mut out, name, value);
    }
    assert_eq!(parse_name_values(&out), Ok(pairs));
    assert_eq!(parse_name_values(&[]), Ok(vec![]));
}

#[test]
fn four_byte_length_ignores_the_high_bit() {
    let bytes = [0x80, 0, 0, 1, 0x80, 0, 0, 2, b'a', b'b', b'c'];
    assert_eq!(parse_name_values(&bytes), Ok(vec![pair(b"a", b"bc")]));
}

#[test]
fn truncated_name_value_length_is_an_error() {
    // A 4-byte length with only 2 bytes present, at the second pair.
    let bytes = [1, 1, b'a', b'b', 0x80, 0];
    assert_eq!(
        parse_name_values(&bytes),
        Err(ProtocolError::NameValueTruncated { offset: 4 })
    );
    // Name length present, value length missing.
    assert_eq!(
        parse_name_values(&[3]),
        Err(ProtocolError::NameValueTruncated { offset: 0 })
    );
}

#[test]
fn name_value_longer_than_the_input_is_an_error() {
    assert_eq!(
        parse_name_values(&[4, 4, b'a', b'b', b'c']),
        Err(ProtocolError::NameValueOverflow {
            offset: 0,
            name_len: 4,
            value_len: 4,
            remaining: 3
        })
    );
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        parse_name_values(&huge),
        Err(ProtocolError::NameValueOverflow {
            name_len: 0x7fff_ffff,
            value_len: 0x7fff_ffff,
            ..
        })
    ));
}

#[test]
fn params_stream_ends_with_an_empty_record() {
    let mut out = Vec::new();
    encode_params(&mut out, 2, &[pair(b"A", b"1")]);
    let records = split_records(&out);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].1, [1, 1, b'A', b'1']);
    assert_eq!(records[1].0.content_length, 0);
    assert!(records
        .iter()
        .all(|(h, _)| h.record_type == RecordType::Params));
}

#[test]
fn begin_request_round_trips() {
    let mut out = Vec::new();
    encode_begin_request(&mut out, 1, ROLE_RESPONDER, KEEP_CONN);
    assert_eq!(out, [1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
    let begin = BeginRequest::parse(1, &out[HEADER_LEN..]).unwrap();
    assert_eq!(begin.role, ROLE_RESPONDER);
    assert!(begin.keep_conn());
    assert!(!BeginRequest { role: 1, flags: 0 }.keep_conn());
}

#[test]
fn begin_request_with_wrong_body_length_is_an_error() {
    assert_eq!(
        BeginRequest::parse(3, &[0, 1, 0]),
        Err(ProtocolError::BadBodyLength {
            record_type: RecordType::BeginRequest,
            request_id: 3,
            length: 3,
            expected: 8
        })
    );
    assert!(BeginRequest::parse(3, &[0; 9]).is_err());
}

#[test]
fn end_request_round_trips() {
    let mut out = Vec::new();
    encode_end_request(&mut out, 0x0102, 0xdead_beef, OVERLOADED);
    assert_eq!(
        out,
        [1, 3, 1, 2, 0, 8, 0, 0, 0xde, 0xad, 0xbe, 0xef, 2, 0, 0, 0]
    );
    assert_eq!(
        EndRequest::parse(0x0102, &out[HEADER_LEN..]),
        Ok(EndRequest {
            app_status: 0xdead_beef,
            protocol_status: OVERLOADED
        })
    );
    assert!(EndRequest::parse(1, &[0; 7]).is_err());
}

#[test]
fn unknown_type_answer_names_the_type() {
    let mut out = Vec::new();
    encode_unknown_type(&mut out, 42);
    assert_eq!(out, [1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn errors_render_as_one_specific_line() {
    let errors = [
        ProtocolError::BadVersion(9),
        ProtocolError::TruncatedHeader { got: 3 },
        ProtocolError::UnexpectedRecord {
            record_type: RecordType::Stdout,
            request_id: 4,
        },
        ProtocolError::ParamsTooLarge {
            request_id: 1,
            limit: 1024,
        },
    ];
    let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(texts.iter().all(|t| !t.contains('\n')));
    assert!(texts[0].contains("version 9"));
    assert!(texts[1].contains("3 of 8 bytes"));
    assert!(texts[2].contains("FCGI_STDOUT") && texts[2].contains("request id 4"));
    assert!(texts[3].contains("1024 bytes"));
}
