//! Where an Ethereum (EVM) JSON-RPC call names its block, and what that says
//! about how long its answer holds: a block named by hash or number, or a
//! transaction by hash, answers the same until a reorganisation; a block tag
//! (`latest`, `safe`, `finalized`, `earliest`) or an omitted block that defaults
//! to `latest` follows the chain tip; `pending` changes between blocks.
//!
//! The table is the Ethereum execution-API specification's parameter order
//! (ethereum.org JSON-RPC reference; EIP-1898 for `{blockHash}` / `{blockNumber}`
//! objects; EIP-1474 for the block tags), cross-checked against the table of
//! block-parameter positions eRPC keeps for its cache (`common/defaults.go`),
//! which also lists the tracing namespaces (`debug_`, `trace_`) of Geth, Erigon
//! and Nethermind. Methods not in it are [`Finality::Unknown`]: their rule in
//! `rpc_methods` alone decides.

use super::json::{Node, Value};

/// What a call's answer depends on, from the safest to the least safe to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finality {
    /// The answer never changes on one chain (`eth_chainId`, `net_version`).
    Static,
    /// Pinned: a block by hash or number, a transaction by hash.
    Pinned,
    /// Not a method of this table: its rule decides.
    Unknown,
    /// Follows the chain tip: a block tag, an omitted block that defaults to
    /// `latest`, or a method whose answer changes every block.
    Tip,
    /// Names `pending`, or a method whose answer is about this client's session
    /// or sends something: never stored.
    Never,
}

/// Where a method names its block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockAt {
    /// Static answers.
    Chain,
    /// Answers that change every block, whatever the params.
    Head,
    /// The answer is about one transaction, named by hash: block-independent.
    Transaction,
    /// Positional parameter `n`; omitted, it defaults to `latest`.
    Param(usize),
    /// `trace_call`: the block is the second parameter, or the third when the
    /// second lists trace types.
    SecondOrThird,
    /// A log filter object in parameter 0: `blockHash`, or `fromBlock`/`toBlock`
    /// each defaulting to `latest`.
    Filter,
    /// Sends, signs, or reads state kept for this client by the node.
    Never,
}

/// The table, sorted by method name for a binary search.
const METHODS: &[(&str, BlockAt)] = &[
    ("arbtrace_block", BlockAt::Param(0)),
    ("arbtrace_call", BlockAt::Param(2)),
    ("arbtrace_callMany", BlockAt::Param(1)),
    ("arbtrace_filter", BlockAt::Filter),
    ("arbtrace_replayBlockTransactions", BlockAt::Param(0)),
    ("arbtrace_replayTransaction", BlockAt::Transaction),
    ("debug_getRawBlock", BlockAt::Param(0)),
    ("debug_getRawHeader", BlockAt::Param(0)),
    ("debug_getRawReceipts", BlockAt::Param(0)),
    ("debug_storageRangeAt", BlockAt::Param(0)),
    ("debug_traceBlock", BlockAt::Transaction),
    ("debug_traceBlockByHash", BlockAt::Param(0)),
    ("debug_traceBlockByNumber", BlockAt::Param(0)),
    ("debug_traceCall", BlockAt::Param(1)),
    ("debug_traceTransaction", BlockAt::Transaction),
    ("erigon_blockNumber", BlockAt::Head),
    ("erigon_getBlockByTimestamp", BlockAt::Param(1)),
    ("erigon_getHeaderByNumber", BlockAt::Param(0)),
    ("eth_accounts", BlockAt::Never),
    ("eth_blobBaseFee", BlockAt::Head),
    ("eth_blockNumber", BlockAt::Head),
    ("eth_call", BlockAt::Param(1)),
    ("eth_chainId", BlockAt::Chain),
    ("eth_coinbase", BlockAt::Never),
    ("eth_createAccessList", BlockAt::Param(1)),
    ("eth_estimateGas", BlockAt::Param(1)),
    ("eth_feeHistory", BlockAt::Param(1)),
    ("eth_gasPrice", BlockAt::Head),
    ("eth_getAccount", BlockAt::Param(1)),
    ("eth_getBalance", BlockAt::Param(1)),
    ("eth_getBlockByHash", BlockAt::Param(0)),
    ("eth_getBlockByNumber", BlockAt::Param(0)),
    ("eth_getBlockReceipts", BlockAt::Param(0)),
    ("eth_getBlockTransactionCountByHash", BlockAt::Param(0)),
    ("eth_getBlockTransactionCountByNumber", BlockAt::Param(0)),
    ("eth_getCode", BlockAt::Param(1)),
    ("eth_getFilterChanges", BlockAt::Never),
    ("eth_getFilterLogs", BlockAt::Never),
    ("eth_getLogs", BlockAt::Filter),
    ("eth_getProof", BlockAt::Param(2)),
    ("eth_getStorageAt", BlockAt::Param(2)),
    ("eth_getTransactionByBlockHashAndIndex", BlockAt::Param(0)),
    ("eth_getTransactionByBlockNumberAndIndex", BlockAt::Param(0)),
    ("eth_getTransactionByHash", BlockAt::Transaction),
    ("eth_getTransactionCount", BlockAt::Param(1)),
    ("eth_getTransactionReceipt", BlockAt::Transaction),
    ("eth_getUncleByBlockHashAndIndex", BlockAt::Param(0)),
    ("eth_getUncleByBlockNumberAndIndex", BlockAt::Param(0)),
    ("eth_getUncleCountByBlockHash", BlockAt::Param(0)),
    ("eth_getUncleCountByBlockNumber", BlockAt::Param(0)),
    ("eth_hashrate", BlockAt::Head),
    ("eth_maxPriorityFeePerGas", BlockAt::Head),
    ("eth_mining", BlockAt::Head),
    ("eth_newBlockFilter", BlockAt::Never),
    ("eth_newFilter", BlockAt::Never),
    ("eth_newPendingTransactionFilter", BlockAt::Never),
    ("eth_sendRawTransaction", BlockAt::Never),
    ("eth_sendTransaction", BlockAt::Never),
    ("eth_sign", BlockAt::Never),
    ("eth_signTransaction", BlockAt::Never),
    ("eth_signTypedData", BlockAt::Never),
    ("eth_signTypedData_v4", BlockAt::Never),
    ("eth_simulateV1", BlockAt::Param(1)),
    ("eth_subscribe", BlockAt::Never),
    ("eth_syncing", BlockAt::Head),
    ("eth_uninstallFilter", BlockAt::Never),
    ("eth_unsubscribe", BlockAt::Never),
    ("net_peerCount", BlockAt::Head),
    ("net_version", BlockAt::Chain),
    ("trace_block", BlockAt::Param(0)),
    ("trace_call", BlockAt::SecondOrThird),
    ("trace_callMany", BlockAt::Param(1)),
    ("trace_filter", BlockAt::Filter),
    ("trace_rawTransaction", BlockAt::Transaction),
    ("trace_replayBlockTransactions", BlockAt::Param(0)),
    ("trace_replayTransaction", BlockAt::Transaction),
    ("trace_transaction", BlockAt::Transaction),
];

/// Classifies one call by its method and `params` (absent params are `None`).
pub fn finality(method: &str, params: Option<&Node<'_>>) -> Finality {
    let Ok(at) = METHODS.binary_search_by(|(name, _)| name.cmp(&method)) else {
        return Finality::Unknown;
    };
    let positional = |n: usize| match params.map(|p| &p.value) {
        Some(Value::Array(items)) => items.get(n),
        _ => None,
    };
    match METHODS[at].1 {
        BlockAt::Chain => Finality::Static,
        BlockAt::Transaction => Finality::Pinned,
        BlockAt::Head => Finality::Tip,
        BlockAt::Never => Finality::Never,
        BlockAt::Param(n) => block(positional(n)),
        BlockAt::SecondOrThird => match positional(1) {
            Some(Node { value: Value::Array(_), .. }) => block(positional(2)),
            second => block(second),
        },
        BlockAt::Filter => filter(positional(0)),
    }
}

/// The stricter of two calls' finality (a batch is kept as long as its least
/// stable call allows).
pub fn stricter(a: Finality, b: Finality) -> Finality {
    a.max(b)
}

/// A block parameter: a tag, a quantity, a 32-byte hash, or an EIP-1898 object.
fn block(param: Option<&Node<'_>>) -> Finality {
    let Some(node) = param else {
        // "defaultBlock ... if omitted, the default is `latest`".
        return Finality::Tip;
    };
    match &node.value {
        Value::Null => Finality::Tip,
        Value::String(s) => {
            let s = s.decode();
            match s.as_ref() {
                "pending" => Finality::Never,
                "latest" | "safe" | "finalized" | "earliest" => Finality::Tip,
                hex if is_hex_quantity(hex) => Finality::Pinned,
                _ => Finality::Tip,
            }
        }
        // Not the specification's form, but a block number all the same.
        Value::Number(_) => Finality::Pinned,
        Value::Object(_) => {
            // EIP-1898: `{"blockHash": …}` or `{"blockNumber": …}`.
            let member = |name| node.value.member(name).ok().flatten();
            if member("blockHash").is_some() {
                Finality::Pinned
            } else if let Some(number) = member("blockNumber") {
                block(Some(number))
            } else {
                Finality::Tip
            }
        }
        Value::Bool(_) | Value::Array(_) => Finality::Tip,
    }
}

/// A log filter: a `blockHash`, or a range whose open ends default to `latest`.
fn filter(param: Option<&Node<'_>>) -> Finality {
    let Some(node @ Node { value: Value::Object(_), .. }) = param else {
        return Finality::Tip;
    };
    let member = |name| node.value.member(name).ok().flatten();
    if member("blockHash").is_some() {
        return Finality::Pinned;
    }
    stricter(block(member("fromBlock")), block(member("toBlock")))
}

/// `0x` followed by hex digits: a quantity (block number) or a hash.
fn is_hex_quantity(s: &str) -> bool {
    s.strip_prefix("0x")
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::json;

    fn of(method: &str, params: &str) -> Finality {
        let node = json::parse(params.as_bytes()).expect("test params are JSON");
        finality(method, Some(&node))
    }

    #[test]
    fn the_table_is_sorted_for_its_binary_search() {
        assert!(METHODS.windows(2).all(|w| w[0].0 < w[1].0), "METHODS must be sorted and unique");
    }

    #[test]
    fn a_block_by_number_or_hash_is_pinned_and_a_tag_follows_the_tip() {
        assert_eq!(of("eth_getBlockByNumber", r#"["0x10", false]"#), Finality::Pinned);
        assert_eq!(of("eth_getBlockByNumber", r#"["latest", false]"#), Finality::Tip);
        assert_eq!(of("eth_getBlockByNumber", r#"["finalized", true]"#), Finality::Tip);
        assert_eq!(of("eth_getBlockByNumber", r#"["pending", false]"#), Finality::Never);
        let hash = format!(r#"["0x{}", false]"#, "ab".repeat(32));
        assert_eq!(of("eth_getBlockByHash", &hash), Finality::Pinned);
    }

    #[test]
    fn an_omitted_default_block_is_latest() {
        assert_eq!(of("eth_getBalance", r#"["0x407d73d8a49eeb85d32cf465507dd71d507100c1"]"#), Finality::Tip);
        assert_eq!(of("eth_getBalance", r#"["0x407d73d8a49eeb85d32cf465507dd71d507100c1", "0x1b4"]"#), Finality::Pinned);
        assert_eq!(of("eth_call", r#"[{"to":"0x01"}]"#), Finality::Tip);
        assert_eq!(finality("eth_call", None), Finality::Tip);
    }

    #[test]
    fn an_eip_1898_object_is_read_for_its_hash_or_number() {
        let hash = format!(r#"[{{"to":"0x01"}}, {{"blockHash":"0x{}"}}]"#, "cd".repeat(32));
        assert_eq!(of("eth_call", &hash), Finality::Pinned);
        assert_eq!(of("eth_call", r#"[{"to":"0x01"}, {"blockNumber":"0x2a"}]"#), Finality::Pinned);
        assert_eq!(of("eth_call", r#"[{"to":"0x01"}, {"blockNumber":"pending"}]"#), Finality::Never);
        assert_eq!(of("eth_call", r#"[{"to":"0x01"}, {}]"#), Finality::Tip);
    }

    #[test]
    fn a_log_filter_is_pinned_only_when_both_ends_are() {
        assert_eq!(of("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"0x2"}]"#), Finality::Pinned);
        assert_eq!(of("eth_getLogs", r#"[{"fromBlock":"0x1"}]"#), Finality::Tip);
        assert_eq!(of("eth_getLogs", r#"[{"fromBlock":"0x1","toBlock":"pending"}]"#), Finality::Never);
        let by_hash = format!(r#"[{{"blockHash":"0x{}"}}]"#, "ef".repeat(32));
        assert_eq!(of("eth_getLogs", &by_hash), Finality::Pinned);
        assert_eq!(of("eth_getLogs", "[]"), Finality::Tip);
    }

    #[test]
    fn trace_call_takes_its_block_from_the_third_param_after_trace_types() {
        assert_eq!(of("trace_call", r#"[{"to":"0x01"}, ["trace"], "0x5"]"#), Finality::Pinned);
        assert_eq!(of("trace_call", r#"[{"to":"0x01"}, ["trace"]]"#), Finality::Tip);
        assert_eq!(of("trace_call", r#"[{"to":"0x01"}, "0x5"]"#), Finality::Pinned);
    }

    #[test]
    fn static_head_transaction_and_never_methods_ignore_their_params() {
        assert_eq!(of("eth_chainId", "[]"), Finality::Static);
        assert_eq!(of("eth_blockNumber", "[]"), Finality::Tip);
        assert_eq!(of("eth_getTransactionReceipt", r#"["0x01"]"#), Finality::Pinned);
        assert_eq!(of("eth_sendRawTransaction", r#"["0x01"]"#), Finality::Never);
        assert_eq!(of("eth_getFilterChanges", r#"["0x01"]"#), Finality::Never);
        assert_eq!(of("my_customMethod", r#"["latest"]"#), Finality::Unknown);
    }

    #[test]
    fn a_batch_is_as_strict_as_its_least_stable_call() {
        assert_eq!(stricter(Finality::Static, Finality::Pinned), Finality::Pinned);
        assert_eq!(stricter(Finality::Tip, Finality::Pinned), Finality::Tip);
        assert_eq!(stricter(Finality::Tip, Finality::Never), Finality::Never);
        assert_eq!(stricter(Finality::Unknown, Finality::Tip), Finality::Tip);
    }
}
