//! `ResponseWriter`: output framed into records, each write one `writev`,
//! the end of the request in one write, short writes resumed.

use super::*;

#[test]
fn small_stdout_is_one_writev_with_padding() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(b"Status: 200\r\n\r\nhi").unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 1);
    assert_eq!(out.data.len(), 8 + 24);
    assert_eq!(&out.data[..8], [1, 6, 0, 1, 0, 17, 7, 0]);
    assert_eq!(&out.data[8..25], b"Status: 200\r\n\r\nhi");
    assert_eq!(writer.bytes_sent(), 17);
}

#[test]
fn output_over_64k_is_split_into_records_sent_in_one_writev() {
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 199) as u8).collect();
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 3);
    writer.write_stdout(&data).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 1);
    let parts = records(&out.data);
    let lengths: Vec<usize> = parts.iter().map(|(_, c)| c.len()).collect();
    assert_eq!(lengths, [65535, 65535, 18930]);
    assert!(parts
        .iter()
        .all(|(h, _)| h.record_type == RecordType::Stdout && h.request_id == 3));
    assert_eq!(
        parts.into_iter().flat_map(|(_, c)| c).collect::<Vec<u8>>(),
        data
    );
    assert_eq!(writer.bytes_sent(), 150_000);
}

#[test]
fn output_over_1_mib_takes_one_writev_per_16_records() {
    let data = vec![b'o'; 17 * MAX_CONTENT + 10];
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(&data).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 2);
    let parts = records(&out.data);
    assert_eq!(parts.len(), 18);
    assert!(parts[..17].iter().all(|(h, _)| h.content_length == 65535));
    assert_eq!(parts[17].1.len(), 10);
    assert_eq!(out.data.len(), 17 * (8 + 65535 + 1) + 8 + 10 + 6);
}

#[test]
fn empty_write_sends_nothing() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(b"").unwrap();
    writer.write_stderr(b"").unwrap();
    assert_eq!(writer.get_ref().calls, 0);
    writer.finish(0, REQUEST_COMPLETE).unwrap();
    let types: Vec<RecordType> = records(&writer.get_ref().data)
        .iter()
        .map(|(h, _)| h.record_type)
        .collect();
    assert_eq!(types, [RecordType::Stdout, RecordType::EndRequest]);
}

#[test]
fn finish_ends_stdout_and_the_request_in_one_write() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 4);
    writer.write_stdout(b"body").unwrap();
    writer.finish(2, REQUEST_COMPLETE).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 2);
    let parts = records(&out.data);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[1].0.record_type, RecordType::Stdout);
    assert_eq!(parts[1].0.content_length, 0);
    assert_eq!(
        end_requests(&out.data),
        [(
            4,
            EndRequest {
                app_status: 2,
                protocol_status: REQUEST_COMPLETE
            }
        )]
    );
}

#[test]
fn finish_also_ends_stderr_when_it_was_used() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.write_stdout(b"out").unwrap();
    writer.write_stderr(b"warning").unwrap();
    writer.write_stdout(b"more").unwrap();
    writer.finish(0, REQUEST_COMPLETE).unwrap();
    let out = writer.get_ref();
    assert_eq!(out.calls, 4);
    let types: Vec<(RecordType, u16)> = records(&out.data)
        .iter()
        .map(|(h, _)| (h.record_type, h.content_length))
        .collect();
    assert_eq!(
        types,
        [
            (RecordType::Stdout, 3),
            (RecordType::Stderr, 7),
            (RecordType::Stdout, 4),
            (RecordType::Stdout, 0),
            (RecordType::Stderr, 0),
            (RecordType::EndRequest, 8),
        ]
    );
    assert_eq!(writer.bytes_sent(), 7);
}

#[test]
fn finish_with_sends_a_small_response_whole_in_one_write() {
    let mut separate = ResponseWriter::new(CountingWriter::new(usize::MAX), 9);
    separate.write_stdout(b"Status: 200\r\n\r\nhello").unwrap();
    separate.finish(3, REQUEST_COMPLETE).unwrap();

    let mut whole = ResponseWriter::new(CountingWriter::new(usize::MAX), 9);
    whole
        .finish_with(b"Status: 200\r\n\r\nhello", 3, REQUEST_COMPLETE)
        .unwrap();
    assert_eq!(whole.get_ref().calls, 1);
    assert_eq!(whole.get_ref().data, separate.get_ref().data);
    assert_eq!(whole.bytes_sent(), 20);
    assert!(whole.is_finished());
    assert!(whole.write_stdout(b"late").is_err());
}

#[test]
fn finish_with_large_or_empty_data_frames_as_usual() {
    let big = vec![b'b'; MAX_CONTENT + 10];
    let mut writer = ResponseWriter::new(CountingWriter::new(7), 2);
    writer.finish_with(&big, 0, REQUEST_COMPLETE).unwrap();
    let out = &writer.get_ref().data;
    let types: Vec<(RecordType, u16)> = records(out)
        .iter()
        .map(|(h, _)| (h.record_type, h.content_length))
        .collect();
    assert_eq!(
        types,
        [
            (RecordType::Stdout, MAX_CONTENT as u16),
            (RecordType::Stdout, 10),
            (RecordType::Stdout, 0),
            (RecordType::EndRequest, 8),
        ]
    );

    let mut empty = ResponseWriter::new(CountingWriter::new(3), 2);
    empty.finish_with(b"", 0, REQUEST_COMPLETE).unwrap();
    assert_eq!(records(&empty.get_ref().data).len(), 2);
    assert_eq!(empty.bytes_sent(), 0);
}

#[test]
fn writes_after_finish_fail() {
    let mut writer = ResponseWriter::new(CountingWriter::new(usize::MAX), 1);
    writer.finish(0, REQUEST_COMPLETE).unwrap();
    assert!(writer.is_finished());
    assert!(writer.write_stdout(b"late").is_err());
    assert!(writer.finish(0, REQUEST_COMPLETE).is_err());
    assert_eq!(end_requests(&writer.get_ref().data).len(), 1);
}

#[test]
fn short_writes_are_resumed() {
    let mut expected = Vec::new();
    encode_stream(&mut expected, RecordType::Stdout, 1, &[b'z'; 100]);
    let mut writer = ResponseWriter::new(CountingWriter::new(5), 1);
    writer.write_stdout(&[b'z'; 100]).unwrap();
    assert_eq!(writer.get_ref().data, expected);
}
