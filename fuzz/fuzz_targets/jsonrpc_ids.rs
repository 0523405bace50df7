//! The JSON-RPC request reader, answer checker (id locator) and id splicer: the
//! input is a request and an answer separated by a NUL byte. Never panics; the
//! located slots are the responses' ids, in body order, each naming the call
//! whose id it is; splicing the answer's own ids back is the identity; splicing
//! other ids puts each call's id at its response's `id` (checked at its
//! position, by parsing the result) and changes nothing else; and splicing the
//! answer in pieces (as a segmented body arrives) gives the same bytes as whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use post_cache::protocol::json::{self, Node, Value};
use post_cache::protocol::jsonrpc::{check_answer, read_request, splice_ids, AnswerRefusal, IdSplicer, MethodList, RpcLifetimes};

fuzz_target!(|data: &[u8]| {
    let (request, answer) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let methods = MethodList::parse("*").unwrap();
    let Ok(request) = read_request(request, &methods, RpcLifetimes { default_ttl: 60, tip_ttl: 2 }) else { return };
    // A null result is refused unless allowed, and changes nothing else.
    let strict = check_answer(&request, answer, false);
    let Ok(slots) = check_answer(&request, answer, true) else {
        assert!(strict.is_err() && strict != Err(AnswerRefusal::Null), "refused only when null results are allowed");
        return;
    };
    assert!(strict.as_ref().is_ok_and(|s| *s == slots) || strict == Err(AnswerRefusal::Null));
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
    // Slot k (in body order) is the id of response k, and names the call whose id
    // that response carries.
    let answer_ids = response_ids(answer);
    assert_eq!(answer_ids.len(), slots.len());
    for (slot, id) in slots.iter().zip(&answer_ids) {
        assert_eq!((slot.offset as usize, (slot.offset + slot.len) as usize), (id.start, id.end), "a slot is not its response's id");
        assert_eq!(canonical(&answer[id.start..id.end]), canonical(&request.ids[slot.call as usize]), "a slot names another call");
    }
    // Other ids, each a different length, land exactly where the responses' ids
    // are, each response getting the id of the call it answers.
    let other: Vec<Vec<u8>> = (0..request.ids.len()).map(|i| format!("\"other-{}\"", "x".repeat(i)).into_bytes()).collect();
    let respliced = splice_ids(answer, &slots, &other).unwrap();
    let respliced_ids = response_ids(&respliced);
    assert_eq!(respliced_ids.len(), slots.len(), "splicing other ids broke the JSON");
    for (slot, id) in slots.iter().zip(&respliced_ids) {
        assert_eq!(&respliced[id.start..id.end], other[slot.call as usize].as_slice(), "call {} got another id", slot.call);
    }
    // Everything outside the ids is the stored answer's, byte for byte.
    let mut outside = (Vec::new(), Vec::new());
    let (mut a, mut r) = (0, 0);
    for (old, new) in answer_ids.iter().zip(&respliced_ids) {
        outside.0.extend_from_slice(&answer[a..old.start]);
        outside.1.extend_from_slice(&respliced[r..new.start]);
        (a, r) = (old.end, new.end);
    }
    outside.0.extend_from_slice(&answer[a..]);
    outside.1.extend_from_slice(&respliced[r..]);
    assert_eq!(outside.0, outside.1, "splicing changed more than the ids");
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

/// The byte range of each response's `id`, in body order (a batch's elements, or
/// the one response); empty when the body is not such JSON.
fn response_ids(body: &[u8]) -> Vec<std::ops::Range<usize>> {
    let Ok(root) = json::parse(body) else { return Vec::new() };
    let responses: Vec<&Node<'_>> = match &root.value {
        Value::Array(items) => items.iter().collect(),
        _ => vec![&root],
    };
    responses
        .iter()
        .filter_map(|r| r.value.member("id").ok().flatten())
        .map(|id| id.start..id.end)
        .collect()
}

/// An id in canonical form (its text when a number has none), to compare ids
/// as values: `"\u0041"` answers `"A"`.
fn canonical(id: &[u8]) -> Vec<u8> {
    let node = json::parse(id).expect("an id is JSON");
    let mut out = Vec::new();
    match json::write_canonical(&node.value, &mut out) {
        Ok(()) => out,
        Err(_) => id.to_vec(),
    }
}
