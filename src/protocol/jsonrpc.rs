//! JSON-RPC 2.0 (jsonrpc.org/specification): which calls may be cached, what keys
//! them (everything but `id`), and where the ids sit in an answer so that a replay
//! can carry the ids of the request it answers.

use super::evm::{self, Finality};
use super::json::{self, JsonError, Node, Value};
use super::rules::Limit;
pub use super::rules::{RuleList, RuleTtl};

/// Most calls in one cacheable batch; a larger batch is forwarded, not keyed.
pub const MAX_BATCH: usize = 1000;

/// The calls of a cacheable request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcRequest {
    /// A batch (array) or a single call: their answers differ in shape.
    pub batch: bool,
    /// Each call's `id` as the client wrote it, in request order.
    pub ids: Vec<Vec<u8>>,
    /// Each call's `id` in canonical form, to match the ids of the answer.
    id_keys: Vec<Vec<u8>>,
    /// What keys the request: each call in canonical JSON without its `id`
    /// (taken out when the request is keyed).
    pub material: Vec<u8>,
    /// How long the answer may be kept by the calls' rules and blocks: the
    /// strictest of its calls.
    pub limit: Limit,
}

/// The lifetimes the rules of `rpc_methods` fall back on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcLifetimes {
    /// `default_ttl`: what a bare method name keeps an answer for.
    pub default_ttl: u64,
    /// `rpc_tip_ttl`: the most seconds an answer that follows the chain tip is
    /// kept; 0: not cached.
    pub tip_ttl: u64,
}

/// Why a request is forwarded without being looked up or stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpcRefusal {
    /// Not JSON-RPC 2.0 (or not JSON, a duplicate member, an id used twice in a
    /// batch, an empty or oversized batch).
    Unparsable,
    /// A call without `id`: nothing is answered, so nothing can be cached.
    Notification,
    /// A method not in `rpc_methods`, or listed `=never`.
    Method,
    /// A call whose answer changes between blocks (`pending`), that sends or
    /// signs, reads a node's filter state, or follows the tip with
    /// `rpc_tip_ttl` 0.
    Uncacheable,
}

/// Why an answer is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerRefusal {
    /// A call was answered with `error`.
    Error,
    /// A call was answered with `result: null`, and null results are not kept.
    Null,
    /// Not a JSON-RPC answer to exactly these calls (ids missing, unknown or repeated).
    Mismatch,
}

/// Where one answered id sits in a stored answer body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdSlot {
    pub offset: u32,
    pub len: u32,
    /// Index of the call (in request order) the id belongs to.
    pub call: u32,
}

/// `rpc_methods`: entries `name`, `name=SECONDS`, `name=forever` or
/// `name=never`, each name exact or a prefix written with a trailing `*`.
pub type MethodList = RuleList;

/// Reads a request body as JSON-RPC 2.0 calls that may all be cached.
pub fn read_request(body: &[u8], methods: &MethodList, lifetimes: RpcLifetimes) -> Result<RpcRequest, RpcRefusal> {
    let root = json::parse(body).map_err(|_| RpcRefusal::Unparsable)?;
    let (batch, calls) = match &root.value {
        Value::Array(items) if items.is_empty() || items.len() > MAX_BATCH => return Err(RpcRefusal::Unparsable),
        Value::Array(items) => (true, items.iter().collect::<Vec<_>>()),
        Value::Object(_) => (false, vec![&root]),
        _ => return Err(RpcRefusal::Unparsable),
    };
    let mut request = RpcRequest { batch, ids: Vec::new(), id_keys: Vec::new(), material: Vec::new(), limit: Limit::default() };
    request.material.extend_from_slice(if batch { b"batch\n" } else { b"call\n" });
    // The first refusal in request order is the one reported.
    let mut limit: Option<Limit> = None;
    for call in calls {
        let (id, call_limit) = read_call(call, methods, lifetimes)?;
        limit = Some(limit.map_or(call_limit, |l| l.stricter(call_limit, lifetimes.default_ttl)));
        let id_key = id_key(body, id);
        if request.id_keys.contains(&id_key) {
            return Err(RpcRefusal::Unparsable);
        }
        request.ids.push(body[id.start..id.end].to_vec());
        request.id_keys.push(id_key);
        json::write_canonical_except(&call.value, "id", &mut request.material).map_err(|_| RpcRefusal::Unparsable)?;
        request.material.push(b'\n');
    }
    request.limit = limit.unwrap_or_default();
    Ok(request)
}

/// Checks one call and returns its `id` and how long its answer may be kept.
fn read_call<'n, 'a>(call: &'n Node<'a>, methods: &MethodList, lifetimes: RpcLifetimes) -> Result<(&'n Node<'a>, Limit), RpcRefusal> {
    let member = |name| call.value.member(name).map_err(|_: JsonError| RpcRefusal::Unparsable);
    if !matches!(call.value, Value::Object(_)) {
        return Err(RpcRefusal::Unparsable);
    }
    match member("jsonrpc")? {
        Some(Node { value: Value::String(v), .. }) if v.is("2.0") => {}
        _ => return Err(RpcRefusal::Unparsable),
    }
    let method = match member("method")? {
        Some(Node { value: Value::String(m), .. }) => m.decode(),
        _ => return Err(RpcRefusal::Unparsable),
    };
    let params = match member("params")? {
        params @ (None | Some(Node { value: Value::Array(_) | Value::Object(_), .. })) => params,
        Some(_) => return Err(RpcRefusal::Unparsable),
    };
    let id = match member("id")? {
        None => return Err(RpcRefusal::Notification),
        Some(id @ Node { value: Value::String(_) | Value::Number(_) | Value::Null, .. }) => id,
        Some(_) => return Err(RpcRefusal::Unparsable),
    };
    let Some(limit) = methods.rule(&method).and_then(RuleTtl::limit) else {
        return Err(RpcRefusal::Method);
    };
    let limit = match evm::finality(&method, params) {
        Finality::Static | Finality::Pinned | Finality::Unknown => limit,
        Finality::Tip if lifetimes.tip_ttl > 0 => limit.capped(lifetimes.tip_ttl, lifetimes.default_ttl),
        Finality::Tip | Finality::Never => return Err(RpcRefusal::Uncacheable),
    };
    Ok((id, limit))
}

/// An id in canonical form (so `"\u0041"` matches `"A"`), or as written when a
/// number has no exact canonical form.
fn id_key(body: &[u8], id: &Node<'_>) -> Vec<u8> {
    let mut key = Vec::new();
    match json::write_canonical(&id.value, &mut key) {
        Ok(()) => key,
        Err(_) => body[id.start..id.end].to_vec(),
    }
}

/// Checks that `answer` answers exactly the calls of `request` without an error
/// (and, unless `store_null`, without a `null` result), and returns where each id
/// sits, in body order.
///
/// A `null` result is how Ethereum nodes say "not there yet" (a receipt or a
/// transaction before it is mined, a block past the tip): the same call answers
/// otherwise a few seconds later, so keeping it for a TTL serves a wrong answer.
/// One such call in a batch keeps the whole batch out: it is stored as one entry.
/// Errors and mismatches are reported before a null.
pub fn check_answer(request: &RpcRequest, answer: &[u8], store_null: bool) -> Result<Vec<IdSlot>, AnswerRefusal> {
    let root = json::parse(answer).map_err(|_| AnswerRefusal::Mismatch)?;
    let responses: Vec<&Node<'_>> = match (&root.value, request.batch) {
        (Value::Array(items), true) => items.iter().collect(),
        (Value::Object(_), false) => vec![&root],
        // A batch may be refused as a whole with one error object.
        (Value::Object(_), true) if root.value.member("error").ok().flatten().is_some() => {
            return Err(AnswerRefusal::Error)
        }
        _ => return Err(AnswerRefusal::Mismatch),
    };
    if responses.len() != request.ids.len() {
        return Err(AnswerRefusal::Mismatch);
    }
    let mut answered = vec![false; request.ids.len()];
    let mut null = false;
    let mut slots = Vec::with_capacity(responses.len());
    for response in responses {
        let member = |name| response.value.member(name).map_err(|_| AnswerRefusal::Mismatch);
        if !matches!(response.value, Value::Object(_)) {
            return Err(AnswerRefusal::Mismatch);
        }
        if member("error")?.is_some() {
            return Err(AnswerRefusal::Error);
        }
        match member("result")? {
            None => return Err(AnswerRefusal::Mismatch),
            Some(Node { value: Value::Null, .. }) => null = true,
            Some(_) => {}
        }
        let id = member("id")?.ok_or(AnswerRefusal::Mismatch)?;
        let key = id_key(answer, id);
        let call = request.id_keys.iter().position(|k| *k == key).ok_or(AnswerRefusal::Mismatch)?;
        if std::mem::replace(&mut answered[call], true) {
            return Err(AnswerRefusal::Mismatch);
        }
        let offset = u32::try_from(id.start).map_err(|_| AnswerRefusal::Mismatch)?;
        let len = u32::try_from(id.end - id.start).map_err(|_| AnswerRefusal::Mismatch)?;
        slots.push(IdSlot { offset, len, call: call as u32 });
    }
    if null && !store_null {
        return Err(AnswerRefusal::Null);
    }
    slots.sort_by_key(|s| s.offset);
    Ok(slots)
}

/// The stored answer with each id slot replaced by the id of the call it answers
/// in this request; `None` if the slots do not fit the body or name unknown calls.
pub fn splice_ids(stored: &[u8], slots: &[IdSlot], ids: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut splicer = IdSplicer::new(slots, ids, stored.len() as u64)?;
    let mut out = Vec::with_capacity(splicer.spliced_len() as usize);
    splicer.feed(stored, &mut out)?;
    splicer.finish()?;
    Some(out)
}

/// Splices ids into a stored answer that arrives in pieces (a segmented body):
/// each piece goes out as soon as it is read, with the ids of this request in
/// the slots it covers, whether a slot lies in one piece or across several.
pub struct IdSplicer<'a> {
    slots: &'a [IdSlot],
    ids: &'a [Vec<u8>],
    /// Bytes of the stored answer fed so far.
    at: u64,
    /// The next slot not yet fully passed.
    next: usize,
    spliced_len: u64,
}

impl<'a> IdSplicer<'a> {
    /// `None` when the slots are out of order, overlap, run past the stored
    /// answer's `stored_len` bytes, or name a call the request does not have.
    pub fn new(slots: &'a [IdSlot], ids: &'a [Vec<u8>], stored_len: u64) -> Option<Self> {
        let mut end = 0u64;
        let mut spliced_len = stored_len;
        for slot in slots {
            let start = u64::from(slot.offset);
            if start < end {
                return None;
            }
            end = start + u64::from(slot.len);
            let id = ids.get(slot.call as usize)?;
            spliced_len = spliced_len.checked_sub(u64::from(slot.len))? + id.len() as u64;
        }
        (end <= stored_len).then_some(Self { slots, ids, at: 0, next: 0, spliced_len })
    }

    /// Whether there is nothing to splice: every piece passes as it is.
    pub fn is_identity(&self) -> bool {
        self.slots.is_empty()
    }

    /// The answer's length once spliced: its `Content-Length`.
    pub fn spliced_len(&self) -> u64 {
        self.spliced_len
    }

    /// Appends the next piece of the stored answer, spliced, to `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let (start, end) = (self.at, self.at + piece.len() as u64);
        let mut from = start;
        while let Some(slot) = self.slots.get(self.next) {
            let (slot_start, slot_end) = (u64::from(slot.offset), u64::from(slot.offset) + u64::from(slot.len));
            if slot_start >= end {
                break;
            }
            if slot_start >= from {
                out.extend_from_slice(&piece[(from - start) as usize..(slot_start - start) as usize]);
                out.extend_from_slice(self.ids.get(slot.call as usize)?);
            }
            // The stored id's bytes are skipped, in this piece and the next.
            from = slot_end.clamp(from, end);
            if slot_end > end {
                break;
            }
            self.next += 1;
        }
        out.extend_from_slice(&piece[(from - start) as usize..]);
        self.at = end;
        Some(())
    }

    /// `Some` when every slot was passed.
    pub fn finish(self) -> Option<()> {
        (self.next == self.slots.len()).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIMES: RpcLifetimes = RpcLifetimes { default_ttl: 60, tip_ttl: 2 };

    fn methods() -> MethodList {
        MethodList::parse("eth_chainId, eth_getBlockByHash,eth_call, net_*").unwrap()
    }

    fn read(body: &str) -> Result<RpcRequest, RpcRefusal> {
        read_request(body.as_bytes(), &methods(), LIFETIMES)
    }

    #[test]
    fn calls_that_differ_only_in_their_id_share_material() {
        let variants = [
            r#"{"jsonrpc":"2.0","id":17,"method":"eth_chainId"}"#,
            r#"{"id":"abc","method":"eth_chainId","jsonrpc":"2.0"}"#,
            r#"{ "jsonrpc" : "2.0", "method" : "eth_chainId", "id" : null }"#,
            r#"{"jsonrpc":"2.0","id":-1.5e3,"method":"eth_chainId"}"#,
        ];
        let first = read(variants[0]).unwrap();
        for v in &variants[1..] {
            let r = read(v).unwrap();
            assert_eq!(r.material, first.material, "{v}");
        }
        assert_eq!(read(variants[1]).unwrap().ids, vec![br#""abc""#.to_vec()]);
        assert_eq!(read(variants[2]).unwrap().ids, vec![b"null".to_vec()]);
        assert_eq!(read(variants[3]).unwrap().ids, vec![b"-1.5e3".to_vec()]);
    }

    #[test]
    fn params_and_method_change_the_material() {
        let a = read(r#"{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to":"0x1"},"latest"]}"#).unwrap();
        let b = read(r#"{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to":"0x2"},"latest"]}"#).unwrap();
        let c = read(r#"{"jsonrpc":"2.0","id":1,"method":"net_version","params":[{"to":"0x1"},"latest"]}"#).unwrap();
        let d = read(r#"{"jsonrpc":"2.0","id":2,"method":"eth_call","params":[ {"to" : "0x1"}, "latest" ]}"#).unwrap();
        assert_ne!(a.material, b.material);
        assert_ne!(a.material, c.material);
        assert_eq!(a.material, d.material);
        // A single call and a batch of that one call answer in different shapes.
        let batch = read(r#"[{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to":"0x1"},"latest"]}]"#).unwrap();
        assert_ne!(batch.material, a.material);
    }

    fn limit_of(methods: &str, tip_ttl: u64, body: &str) -> Result<Limit, RpcRefusal> {
        let methods = MethodList::parse(methods).unwrap();
        read_request(body.as_bytes(), &methods, RpcLifetimes { default_ttl: 60, tip_ttl }).map(|r| r.limit)
    }

    #[test]
    fn a_call_at_the_chain_tip_is_kept_at_most_the_tip_ttl_and_pending_never() {
        let rules = "eth_getBlockByNumber=600, eth_chainId=forever, eth_*";
        let call = |params: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"eth_getBlockByNumber","params":{params}}}"#);
        let pinned = limit_of(rules, 2, &call(r#"["0x10",false]"#)).unwrap();
        assert_eq!(pinned, Limit { when_silent: Some(600), at_most: Some(600) });
        let tip = limit_of(rules, 2, &call(r#"["latest",false]"#)).unwrap();
        assert_eq!(tip, Limit { when_silent: Some(2), at_most: Some(2) });
        assert_eq!(limit_of(rules, 2, &call(r#"["pending",false]"#)), Err(RpcRefusal::Uncacheable));
        assert_eq!(limit_of(rules, 0, &call(r#"["latest",false]"#)), Err(RpcRefusal::Uncacheable));
        let chain = limit_of(rules, 2, r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).unwrap();
        assert_eq!(chain, Limit { when_silent: Some(1 << 31), at_most: None });
        // Listed by a prefix, a send is still never cached.
        let send = r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":["0x00"]}"#;
        assert_eq!(limit_of(rules, 2, send), Err(RpcRefusal::Uncacheable));
    }

    #[test]
    fn a_batch_is_kept_as_long_as_its_least_stable_call() {
        let body = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},
            {"jsonrpc":"2.0","id":2,"method":"eth_getBalance","params":["0x01"]}]"#;
        let limit = limit_of("eth_chainId=forever, eth_getBalance=30", 2, body).unwrap();
        assert_eq!(limit, Limit { when_silent: Some(2), at_most: Some(2) });
        let never = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"x_y"}]"#;
        assert_eq!(limit_of("eth_chainId, x_y=never", 2, never), Err(RpcRefusal::Method));
    }

    #[test]
    fn method_list_matches_exact_names_and_prefixes() {
        let m = methods();
        assert!(m.allows("eth_chainId") && m.allows("net_version") && m.allows("net_"));
        assert!(!m.allows("eth_chainid") && !m.allows("eth_sendRawTransaction") && !m.allows("ne"));
        assert!(MethodList::parse("*").unwrap().allows("anything"));
        assert!(MethodList::parse("eth_*_x").is_err());
        assert!(MethodList::parse(" , ").unwrap().is_empty());
    }

    #[test]
    fn refusals_are_told_apart() {
        assert_eq!(read(r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#), Err(RpcRefusal::Notification));
        assert_eq!(read(r#"{"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction"}"#), Err(RpcRefusal::Method));
        for bad in [
            r#"{"id":1,"method":"eth_chainId"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            r#"{"jsonrpc":"2.0","id":[1],"method":"eth_chainId"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"eth_chainId"}"#,
            r#"[]"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":1.0,"method":"net_version"}]"#,
            r#"[1]"#,
            r#""eth_chainId""#,
            "not json",
        ] {
            assert_eq!(read(bad), Err(RpcRefusal::Unparsable), "{bad}");
        }
        // In a batch, one uncacheable call makes the whole batch uncacheable.
        let mixed = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","method":"net_version"}]"#;
        assert_eq!(read(mixed), Err(RpcRefusal::Notification));
    }

    #[test]
    fn oversized_batches_are_refused() {
        let call = r#"{"jsonrpc":"2.0","id":ID,"method":"eth_chainId"}"#;
        let batch = |n: usize| format!("[{}]", (0..n).map(|i| call.replace("ID", &i.to_string())).collect::<Vec<_>>().join(","));
        assert!(read(&batch(MAX_BATCH)).is_ok());
        assert_eq!(read(&batch(10_000)), Err(RpcRefusal::Unparsable));
    }

    #[test]
    fn a_single_answer_gets_the_next_callers_id() {
        let request = read(r#"{"jsonrpc":"2.0","id":17,"method":"eth_chainId"}"#).unwrap();
        let answer = br#"{"jsonrpc":"2.0","id":17,"result":"0x1"}"#;
        let slots = check_answer(&request, answer, false).unwrap();
        assert_eq!(slots, [IdSlot { offset: 22, len: 2, call: 0 }]);
        let next = read(r#"{"jsonrpc":"2.0","id":"req-18","method":"eth_chainId"}"#).unwrap();
        let replay = splice_ids(answer, &slots, &next.ids).unwrap();
        assert_eq!(replay, br#"{"jsonrpc":"2.0","id":"req-18","result":"0x1"}"#);
    }

    #[test]
    fn a_batch_answered_out_of_order_maps_each_id_to_its_call() {
        let request = read(
            r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":"two","method":"net_version"}]"#,
        )
        .unwrap();
        let answer = br#"[{"jsonrpc":"2.0","id":"two","result":"1"},{"jsonrpc":"2.0","id":1,"result":"0x1"}]"#;
        let slots = check_answer(&request, answer, false).unwrap();
        assert_eq!(slots.iter().map(|s| s.call).collect::<Vec<_>>(), [1, 0]);
        let next = read(
            r#"[{"jsonrpc":"2.0","id":null,"method":"eth_chainId"},{"jsonrpc":"2.0","id":42,"method":"net_version"}]"#,
        )
        .unwrap();
        let replay = splice_ids(answer, &slots, &next.ids).unwrap();
        assert_eq!(replay, br#"[{"jsonrpc":"2.0","id":42,"result":"1"},{"jsonrpc":"2.0","id":null,"result":"0x1"}]"#);
    }

    #[test]
    fn errors_and_mismatched_answers_are_not_stored() {
        let single = read(r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId"}"#).unwrap();
        let batch = read(r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_chainId"}]"#).unwrap();
        let cases: &[(&RpcRequest, &str, AnswerRefusal)] = &[
            (&single, r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}"#, AnswerRefusal::Error),
            (&single, r#"{"jsonrpc":"2.0","id":2,"result":"0x1"}"#, AnswerRefusal::Mismatch),
            (&single, r#"{"jsonrpc":"2.0","result":"0x1"}"#, AnswerRefusal::Mismatch),
            (&single, r#"{"jsonrpc":"2.0","id":1}"#, AnswerRefusal::Mismatch),
            (&single, r#"[{"jsonrpc":"2.0","id":1,"result":"0x1"}]"#, AnswerRefusal::Mismatch),
            (&single, "<html>", AnswerRefusal::Mismatch),
            (&batch, r#"[{"jsonrpc":"2.0","id":1,"result":"a"}]"#, AnswerRefusal::Mismatch),
            (&batch, r#"[{"jsonrpc":"2.0","id":1,"result":"a"},{"jsonrpc":"2.0","id":1,"result":"b"}]"#, AnswerRefusal::Mismatch),
            (&batch, r#"[{"jsonrpc":"2.0","id":1,"result":"a"},{"jsonrpc":"2.0","id":2,"error":{}}]"#, AnswerRefusal::Error),
            (&batch, r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600}}"#, AnswerRefusal::Error),
        ];
        for (request, answer, want) in cases {
            assert_eq!(check_answer(request, answer.as_bytes(), false), Err(*want), "{answer}");
        }
    }

    #[test]
    fn a_null_result_is_not_stored_unless_allowed_but_empty_values_are() {
        let single = read(r#"{"jsonrpc":"2.0","id":1,"method":"eth_call"}"#).unwrap();
        let pending = br#"{"jsonrpc":"2.0","id":1,"result":null}"#;
        assert_eq!(check_answer(&single, pending, false), Err(AnswerRefusal::Null));
        assert_eq!(check_answer(&single, pending, true).unwrap().len(), 1);
        // `[]` (no logs in a range) and `"0x"` (the code of an account without
        // any) are what the method computed, not absence: stored.
        for value in [r#"[]"#, r#""0x""#, r#"{}"#, r#""""#, "0", "false"] {
            let answer = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{value}}}"#);
            assert!(check_answer(&single, answer.as_bytes(), false).is_ok(), "{value}");
        }
    }

    #[test]
    fn one_null_result_keeps_a_whole_batch_out_and_errors_are_told_first() {
        let batch = read(r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"eth_call"}]"#).unwrap();
        let one_null = br#"[{"jsonrpc":"2.0","id":1,"result":"0x1"},{"jsonrpc":"2.0","id":2,"result":null}]"#;
        assert_eq!(check_answer(&batch, one_null, false), Err(AnswerRefusal::Null));
        assert_eq!(check_answer(&batch, one_null, true).unwrap().len(), 2);
        let null_then_error = br#"[{"jsonrpc":"2.0","id":1,"result":null},{"jsonrpc":"2.0","id":2,"error":{"code":1}}]"#;
        assert_eq!(check_answer(&batch, null_then_error, false), Err(AnswerRefusal::Error));
        let null_then_stranger = br#"[{"jsonrpc":"2.0","id":1,"result":null},{"jsonrpc":"2.0","id":3,"result":"0x1"}]"#;
        assert_eq!(check_answer(&batch, null_then_stranger, false), Err(AnswerRefusal::Mismatch));
    }

    #[test]
    fn splicing_refuses_slots_that_do_not_fit() {
        let ids = vec![b"1".to_vec()];
        assert!(splice_ids(b"{}", &[IdSlot { offset: 1, len: 5, call: 0 }], &ids).is_none());
        assert!(splice_ids(b"{\"id\":9}", &[IdSlot { offset: 6, len: 1, call: 3 }], &ids).is_none());
        let overlapping = [IdSlot { offset: 1, len: 3, call: 0 }, IdSlot { offset: 2, len: 1, call: 0 }];
        assert!(splice_ids(b"abcdef", &overlapping, &ids).is_none());
        assert_eq!(splice_ids(b"{\"id\":9}", &[IdSlot { offset: 6, len: 1, call: 0 }], &ids).unwrap(), b"{\"id\":1}");
    }

    #[test]
    fn ids_are_spliced_the_same_whatever_pieces_the_answer_arrives_in() {
        let stored = br#"[{"id":1,"result":"aa"},{"id":"two","result":"b"}]"#;
        let slots = [IdSlot { offset: 7, len: 1, call: 1 }, IdSlot { offset: 30, len: 5, call: 0 }];
        let ids = vec![b"\"first\"".to_vec(), b"22".to_vec()];
        let whole = splice_ids(stored, &slots, &ids).unwrap();
        assert_eq!(whole, br#"[{"id":22,"result":"aa"},{"id":"first","result":"b"}]"#);
        for piece_len in 1..stored.len() {
            let mut splicer = IdSplicer::new(&slots, &ids, stored.len() as u64).unwrap();
            assert_eq!(splicer.spliced_len(), whole.len() as u64);
            let mut out = Vec::new();
            for piece in stored.chunks(piece_len) {
                splicer.feed(piece, &mut out).unwrap();
            }
            splicer.finish().unwrap();
            assert_eq!(out, whole, "pieces of {piece_len}");
        }
        let mut short = IdSplicer::new(&slots, &ids, stored.len() as u64).unwrap();
        short.feed(&stored[..20], &mut Vec::new()).unwrap();
        assert!(short.finish().is_none(), "an answer that stops before its last slot");
    }
}
