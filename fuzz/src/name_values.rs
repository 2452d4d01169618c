//! The name-value (PARAMS) decoder: any bytes parse or fail cleanly; what
//! parses re-encodes to pairs that parse the same, never longer than the
//! input; pairs survive a PARAMS stream cut into records anywhere; and a
//! `FCGI_GET_VALUES` query of any content gets one well-formed answer.

use fcgi_spawn::fastcgi::record::{
    encode_begin_request, encode_name_value, encode_record, encode_stream, encode_stream_end,
    parse_name_values, Header, RecordType, HEADER_LEN, KEEP_CONN, MAX_CONTENT, ROLE_AUTHORIZER,
};
use fcgi_spawn::fastcgi::{Limits, ServerConnection};

use super::{Pipe, Schedule};

/// One input (its first byte cuts the PARAMS stream, the rest is the
/// pairs): panics when a rule above is broken.
pub fn run(data: &[u8]) {
    // The first byte picks the record sizes of the PARAMS stream.
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    let Ok(pairs) = parse_name_values(data) else {
        // GET_VALUES with a malformed query: an error, not an answer.
        let (outcome, reply) = get_values(data);
        assert!(outcome.is_err() && reply.is_empty());
        return;
    };
    let total: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
    assert!(total <= data.len(), "pairs hold more than the input");

    let mut encoded = Vec::new();
    for (name, value) in &pairs {
        encode_name_value(&mut encoded, name, value);
    }
    assert!(
        encoded.len() <= data.len(),
        "the encoder is not the shortest"
    );
    assert_eq!(parse_name_values(&encoded).as_ref(), Ok(&pairs));

    // The same pairs as an authorizer's PARAMS, records cut anywhere.
    let mut stream = Vec::new();
    encode_begin_request(&mut stream, 1, ROLE_AUTHORIZER, KEEP_CONN);
    let mut schedule = Schedule::new(&[cut]);
    let mut rest = &encoded[..];
    while !rest.is_empty() {
        let (piece, after) = rest.split_at(schedule.chunk().min(rest.len()));
        encode_stream(&mut stream, RecordType::Params, 1, piece);
        rest = after;
    }
    encode_stream_end(&mut stream, RecordType::Params, 1);
    let limits = Limits {
        max_params: usize::MAX,
        ..Limits::default()
    };
    let mut conn = ServerConnection::new(Pipe::new(stream), limits, 1, 1);
    let request = conn.read_request().expect("a request").expect("not None");
    assert_eq!(request.params, pairs);

    if data.len() <= MAX_CONTENT {
        let (outcome, reply) = get_values(data);
        assert!(outcome.is_ok());
        let header = Header::parse(&reply).expect("one answer");
        assert_eq!(header.record_type, RecordType::GetValuesResult);
        assert_eq!(reply.len(), header.record_len(), "one record");
        let content = &reply[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
        let answered = parse_name_values(content).expect("a well-formed answer");
        assert!(answered.len() <= 3);
        for (name, _) in &answered {
            assert!(pairs.iter().any(|(n, _)| n == name), "answered unasked");
            assert_eq!(answered.iter().filter(|(n, _)| n == name).count(), 1);
        }
    }
}

/// Sends `query` as `FCGI_GET_VALUES`; the result of reading, and the reply.
fn get_values(query: &[u8]) -> (Result<(), String>, Vec<u8>) {
    if query.len() > MAX_CONTENT {
        return (Err("too long for one record".into()), Vec::new());
    }
    let mut stream = Vec::new();
    encode_record(&mut stream, RecordType::GetValues, 0, query);
    let mut conn = ServerConnection::new(Pipe::new(stream), Limits::default(), 1, 1);
    let result = conn.read_request().map(|r| assert!(r.is_none()));
    let reply = std::mem::take(&mut conn.get_mut().written);
    (result.map_err(|e| e.to_string()), reply)
}
