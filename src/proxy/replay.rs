//! Answering from the store: a stored record replayed (or `304 Not Modified`
//! to a client whose validator matches it), whole or segment by segment.

use super::flow::{Env, Flow};
use super::found::{StoredAnswer, StoredBody, Usable};
use super::respond::{push_length, push_status, report};
use crate::body::{respond_full, Client};
use crate::cache::conditional;
use crate::cache::outcome::Outcome;
use crate::http::headers::HeaderList;

impl<E: Env> Flow<'_, E> {
    /// Answers from a stored record: its status and header lines in order, its
    /// body and `Age`.
    pub async fn replay(&self, client: impl Client, usable: &Usable<'_>, outcome: Outcome) {
        let rec = &usable.record;
        let stored = StoredAnswer { status: rec.meta.status, headers: &rec.headers, age: rec.age(self.now), body: usable.stored_body() };
        self.answer_stored(client, &stored, outcome).await
    }

    /// Sends a stored response, or `304 Not Modified` when the client's own
    /// `If-None-Match` / `If-Modified-Since` matches it (GET, HEAD and QUERY
    /// only; a POST carrying them was forwarded). Targeted cache-control fields
    /// stay here.
    pub async fn answer_stored(&self, client: impl Client, stored: &StoredAnswer<'_>, outcome: Outcome) {
        let targeted = self.config.targeted_fields();
        let relayed = |name: &str| !targeted.iter().any(|t| !t.is_empty() && name.eq_ignore_ascii_case(t));
        let method = self.request.method.as_str();
        // RFC 9111 §4.3.2: "A cache that receives a conditional request ... can
        // evaluate the conditions using the stored response"; only a 200 has a
        // selected representation to compare.
        if stored.status == 200
            && conditional::revalidates(method)
            && conditional::not_modified(&self.request.headers, stored.headers)
        {
            let mut head = conditional::not_modified_headers(stored.headers);
            head.retain(|(n, _)| relayed(n));
            head.push(("age".into(), stored.age.to_string().into_bytes()));
            push_status(&mut head, outcome);
            return report(respond_full(client, 304, head, b"").await);
        }
        let mut head: HeaderList =
            stored.headers.iter().filter(|(n, _)| relayed(n)).map(|(n, v)| (n.to_string(), v.to_vec())).collect();
        head.push(("age".into(), stored.age.to_string().into_bytes()));
        let body = match stored.body {
            StoredBody::Whole(body) => body,
            StoredBody::Segmented(usable) => return self.stream(client, stored.status, head, usable, outcome).await,
        };
        push_length(&mut head, stored.status, body.len());
        push_status(&mut head, outcome);
        report(respond_full(client, stored.status, head, body).await);
    }
}
