//! The JSON-RPC request reader, answer checker (id locator) and id splicer: the
//! input is a request and an answer separated by a NUL byte. Never panics; the
//! located slots hold ids; splicing the answer's own ids back is the identity,
//! splicing other ids gives JSON whose ids are those, and splicing the answer
//! in pieces (as a segmented body arrives) gives the same bytes as whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::protocol::json::{self, Value};
use post_cache::protocol::jsonrpc::{check_answer, read_request, splice_ids, IdSplicer, MethodList};

fuzz_target!(|data: &[u8]| {
    let (request, answer) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let methods = MethodList::parse("*").unwrap();
    let Ok(request) = read_request(request, &methods) else { return };
    let Ok(slots) = check_answer(&request, answer) else { return };
    assert_eq!(slots.len(), request.ids.len());
    let mut own_ids = vec![Vec::new(); request.ids.len()];
    for slot in &slots {
        let span = &answer[slot.offset as usize..(slot.offset + slot.len) as usize];
        let node = json::parse(span).expect("a slot holds one JSON value");
        assert!(matches!(node.value, Value::String(_) | Value::Number(_) | Value::Null));
        own_ids[slot.call as usize] = span.to_vec();
    }
    assert_eq!(splice_ids(answer, &slots, &own_ids).unwrap(), answer);
    let spliced = splice_ids(answer, &slots, &request.ids).expect("slots fit");
    assert!(json::parse(&spliced).is_ok(), "splicing broke the JSON");
    let other: Vec<Vec<u8>> = (0..request.ids.len()).map(|i| format!("\"other-{i}\"").into_bytes()).collect();
    let respliced = splice_ids(answer, &slots, &other).unwrap();
    assert!(json::parse(&respliced).is_ok(), "splicing other ids broke the JSON");
    for (i, id) in other.iter().enumerate() {
        assert!(respliced.windows(id.len()).any(|w| w == id.as_slice()), "id of call {i} missing");
    }
    let piece_len = 1 + data.len() % 7;
    let mut splicer = IdSplicer::new(&slots, &other, answer.len() as u64).expect("slots fit");
    assert_eq!(splicer.spliced_len(), respliced.len() as u64);
    let mut pieces = Vec::new();
    for piece in answer.chunks(piece_len) {
        splicer.feed(piece, &mut pieces).expect("slots fit");
    }
    splicer.finish().expect("every slot passed");
    assert_eq!(pieces, respliced, "pieces of {piece_len} spliced differently");
});
