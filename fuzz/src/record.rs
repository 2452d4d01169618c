//! The record decoder: `RecordReader` framing a stream cut anywhere gives
//! the records it gives the whole stream, each of them re-encodes to the
//! bytes it came from, and nothing panics or allocates beyond the input.

use fcgi_spawn::fastcgi::reader::RecordReader;
use fcgi_spawn::fastcgi::record::{
    encode_begin_request, encode_end_request, encode_record, padding_for, BeginRequest, EndRequest,
    Header, RecordType, HEADER_LEN,
};

use super::{Input, Pipe};

/// Every record and how the stream ended.
type Framed = (Vec<(Header, Vec<u8>)>, Result<(), String>);

/// Reads the records the pipe gives until it ends or errs.
fn frame(pipe: Pipe) -> Framed {
    let mut reader = RecordReader::new(pipe);
    let mut records = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(record)) => records.push((record.header, record.content.to_vec())),
            Ok(None) => return (records, Ok(())),
            Err(e) => return (records, Err(e.to_string())),
        }
    }
}

/// One input: panics when the decoder breaks one of the rules above.
pub fn run(data: &[u8]) {
    let Ok(Input {
        stream, schedule, ..
    }) = Input::parse(data)
    else {
        return;
    };
    let (records, end) = frame(Pipe::new(stream.clone()));
    let (cut, cut_end) = frame(Pipe::chunked(stream.clone(), schedule));
    assert_eq!(records, cut, "cutting the stream changed its records");
    assert_eq!(end, cut_end, "cutting the stream changed how it ended");

    let mut pos = 0;
    for (header, content) in &records {
        // The header and content are the bytes on the wire.
        let wire = &stream[pos..pos + header.record_len()];
        assert_eq!(header.encode()[..7], wire[..7]);
        assert_eq!(Header::parse(&header.encode()), Ok(*header));
        assert_eq!(content[..], wire[HEADER_LEN..HEADER_LEN + content.len()]);
        pos += header.record_len();

        // Our encoder writes the same record, with its own padding.
        let mut out = Vec::new();
        encode_record(&mut out, header.record_type, header.request_id, content);
        let again = Header::parse(&out).expect("our own header");
        assert_eq!(again.record_type, header.record_type);
        assert_eq!(again.request_id, header.request_id);
        assert_eq!(again.content_length, header.content_length);
        assert_eq!(again.padding_length, padding_for(content.len()));
        assert_eq!(out.len(), again.record_len());
        assert_eq!(out[HEADER_LEN..HEADER_LEN + content.len()], content[..]);
        assert!(out.len() % 8 == 0);

        match header.record_type {
            RecordType::BeginRequest => {
                if let Ok(begin) = BeginRequest::parse(header.request_id, content) {
                    let mut out = Vec::new();
                    encode_begin_request(&mut out, header.request_id, begin.role, begin.flags);
                    assert_eq!(out[HEADER_LEN..HEADER_LEN + 3], content[..3]);
                } else {
                    assert_ne!(content.len(), 8);
                }
            }
            RecordType::EndRequest => {
                if let Ok(end) = EndRequest::parse(header.request_id, content) {
                    let mut out = Vec::new();
                    encode_end_request(
                        &mut out,
                        header.request_id,
                        end.app_status,
                        end.protocol_status,
                    );
                    assert_eq!(out[HEADER_LEN..HEADER_LEN + 5], content[..5]);
                } else {
                    assert_ne!(content.len(), 8);
                }
            }
            _ => {}
        }
    }
    // What was not framed is the unfinished tail (or garbage).
    match end {
        Ok(()) => assert_eq!(pos, stream.len()),
        Err(_) => assert!(pos < stream.len()),
    }
}
