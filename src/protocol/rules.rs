//! Compact rules written in one variable: `name`, `name=SECONDS`,
//! `name=forever` or `name=never`, comma-separated, a name exact or a prefix
//! ending in `*`. `rpc_methods` (JSON-RPC methods), `graphql_operations`
//! (operation names) and `graphql_types` (`__typename`s) are written so.

/// How long answers may be kept, by the entry that names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleTtl {
    /// A bare name: `default_ttl` when the origin gives no freshness.
    Default,
    /// `name=never`: not stored, whatever the origin says.
    Never,
    /// `name=SECONDS`: that long when the origin is silent, and never longer.
    Seconds(u32),
    /// `name=forever`: the answer never changes (`eth_chainId`, a block by hash).
    Forever,
}

/// Longest `name=SECONDS` kept: RFC 9111 §1.2.2's delta-seconds bound.
const MAX_RULE_TTL: u64 = 1 << 31;

/// A list of `name`, `name=SECONDS`, `name=forever` or `name=never` entries,
/// each name exact or a prefix written with a trailing `*`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleList(Vec<(String, RuleTtl)>);

impl RuleList {
    /// Parses a comma-separated list; `Err` names the bad entry.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, ttl) = match entry.split_once('=') {
                None => (entry, RuleTtl::Default),
                Some((name, ttl)) => (name.trim(), parse_ttl(entry, ttl.trim())?),
            };
            if name.is_empty() {
                return Err(format!("{entry:?}: the name is missing before `=`"));
            }
            if name.strip_suffix('*').unwrap_or(name).contains('*') {
                return Err(format!("{entry:?}: `*` may only end a name"));
            }
            if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control() || *c == '"') {
                return Err(format!("{entry:?}: {c:?} cannot be part of a name"));
            }
            if rules.iter().any(|(seen, _): &(String, RuleTtl)| seen == name) {
                return Err(format!("{entry:?}: `{name}` is listed twice"));
            }
            rules.push((name.to_string(), ttl));
        }
        Ok(Self(rules))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entry that governs `name`: its exact name, else the longest
    /// matching prefix (so `eth_getBlockByHash=forever` beats `eth_*=10`).
    pub fn rule(&self, method: &str) -> Option<RuleTtl> {
        let mut best: Option<(usize, RuleTtl)> = None;
        for (name, ttl) in &self.0 {
            let specificity = match name.strip_suffix('*') {
                Some(prefix) if method.starts_with(prefix) => prefix.len(),
                Some(_) => continue,
                None if name == method => usize::MAX,
                None => continue,
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, *ttl));
            }
        }
        best.map(|(_, ttl)| ttl)
    }
}

fn parse_ttl(entry: &str, ttl: &str) -> Result<RuleTtl, String> {
    match ttl {
        "forever" => return Ok(RuleTtl::Forever),
        "never" => return Ok(RuleTtl::Never),
        _ => {}
    }
    match ttl.parse::<u64>() {
        Ok(seconds) if ttl.bytes().all(|b| b.is_ascii_digit()) => Ok(RuleTtl::Seconds(seconds.min(MAX_RULE_TTL) as u32)),
        _ => Err(format!("{entry:?}: after `=` comes seconds (e.g. `600`), `forever` or `never`")),
    }
}

/// What the rules allow of an answer's freshness, beside the origin's own:
/// the lifetime when the origin states none, and a bound whatever it states.
/// `cache::policy` applies it; the stricter of the two always wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limit {
    /// Seconds fresh when the origin states no freshness; `None`: `default_ttl`.
    pub when_silent: Option<u64>,
    /// The most seconds fresh, whatever the origin states; `None`: no bound.
    pub at_most: Option<u64>,
}

impl RuleTtl {
    /// The limit an entry sets; `None` for `never`.
    pub fn limit(self) -> Option<Limit> {
        match self {
            RuleTtl::Default => Some(Limit::default()),
            RuleTtl::Never => None,
            RuleTtl::Seconds(n) => Some(Limit { when_silent: Some(u64::from(n)), at_most: Some(u64::from(n)) }),
            RuleTtl::Forever => Some(Limit { when_silent: Some(MAX_RULE_TTL), at_most: None }),
        }
    }
}

impl Limit {
    /// The stricter of two limits (the calls of one batch are one entry).
    /// `default_ttl` is what a `None` lifetime stands for.
    pub fn stricter(self, other: Limit, default_ttl: u64) -> Limit {
        let when_silent = match (self.when_silent, other.when_silent) {
            (None, None) => None,
            (Some(a), None) | (None, Some(a)) => Some(a.min(default_ttl)),
            (Some(a), Some(b)) => Some(a.min(b)),
        };
        let at_most = match (self.at_most, other.at_most) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Limit { when_silent, at_most }
    }

    /// This limit, and never more than `seconds`.
    pub fn capped(self, seconds: u64, default_ttl: u64) -> Limit {
        self.stricter(Limit { when_silent: Some(seconds), at_most: Some(seconds) }, default_ttl)
    }
}

/// The request path asks for a name's limit (`rule` then `RuleTtl::limit`);
/// tests state membership alone.
#[cfg(test)]
impl RuleList {
    /// Whether an entry names `name` with anything but `never`.
    pub fn allows(&self, name: &str) -> bool {
        self.rule(name).is_some_and(|ttl| ttl != RuleTtl::Never)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_combine_to_the_stricter_lifetime_and_bound() {
        let forever = RuleTtl::Forever.limit().unwrap();
        let ten = RuleTtl::Seconds(10).limit().unwrap();
        let default = RuleTtl::Default.limit().unwrap();
        assert_eq!(RuleTtl::Never.limit(), None);
        assert_eq!(forever.stricter(ten, 60), ten);
        assert_eq!(forever.stricter(default, 60), Limit { when_silent: Some(60), at_most: None });
        assert_eq!(default.stricter(default, 60), default);
        assert_eq!(ten.stricter(default, 5), Limit { when_silent: Some(5), at_most: Some(10) });
        assert_eq!(forever.capped(2, 60), Limit { when_silent: Some(2), at_most: Some(2) });
        assert_eq!(default.capped(2, 60), Limit { when_silent: Some(2), at_most: Some(2) });
        assert_eq!(default.capped(120, 60), Limit { when_silent: Some(60), at_most: Some(120) });
    }

    #[test]
    fn method_entries_carry_seconds_or_forever() {
        let m = RuleList::parse("eth_chainId=forever, eth_getBlockByHash=forever, eth_getBlockByNumber=600, net_*=60, eth_call").unwrap();
        assert_eq!(m.rule("eth_chainId"), Some(RuleTtl::Forever));
        assert_eq!(m.rule("eth_getBlockByNumber"), Some(RuleTtl::Seconds(600)));
        assert_eq!(m.rule("net_version"), Some(RuleTtl::Seconds(60)));
        assert_eq!(m.rule("eth_call"), Some(RuleTtl::Default));
        assert_eq!(m.rule("eth_getLogs"), None);
        let never = RuleList::parse("eth_*=60, eth_getFilterChanges=never").unwrap();
        assert_eq!(never.rule("eth_getFilterChanges"), Some(RuleTtl::Never));
        assert!(never.allows("eth_call") && !never.allows("eth_getFilterChanges"));
        assert_eq!(RuleList::parse("eth_x = 5").unwrap().rule("eth_x"), Some(RuleTtl::Seconds(5)));
        assert_eq!(RuleList::parse("eth_x=99999999999").unwrap().rule("eth_x"), Some(RuleTtl::Seconds(1 << 31)));
    }

    #[test]
    fn the_exact_name_or_the_longest_prefix_governs_a_method() {
        let m = RuleList::parse("eth_*=10, eth_get*=20, eth_getBlockByHash=forever").unwrap();
        assert_eq!(m.rule("eth_getBlockByHash"), Some(RuleTtl::Forever));
        assert_eq!(m.rule("eth_getBalance"), Some(RuleTtl::Seconds(20)));
        assert_eq!(m.rule("eth_call"), Some(RuleTtl::Seconds(10)));
        let reversed = RuleList::parse("eth_getBlockByHash=forever, eth_get*=20, eth_*=10").unwrap();
        assert_eq!(reversed.rule("eth_getBalance"), Some(RuleTtl::Seconds(20)));
    }

    #[test]
    fn a_bad_method_entry_is_refused_naming_it() {
        for (list, names) in [
            ("eth_chainId=for-ever", "eth_chainId=for-ever"),
            ("eth_chainId=-1", "eth_chainId=-1"),
            ("eth_chainId=", "eth_chainId="),
            ("=60", "=60"),
            ("eth_call, eth_call=5", "eth_call=5"),
            ("eth chainId", "eth chainId"),
            ("eth_*_x=5", "eth_*_x=5"),
        ] {
            let err = RuleList::parse(list).expect_err(list);
            assert!(err.contains(&format!("{names:?}")), "{list}: {err}");
        }
    }
}
