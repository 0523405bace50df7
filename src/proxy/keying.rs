//! Reading a candidate's body and deriving its key: raw bytes, or the canonical
//! form its `body_format` gives, or a reason it must go around the cache.

use super::flow::{content_length, ClientRequest, Keyed};
use crate::body::{BodyError, BodySource};
use crate::http::digest::Digest32;
use crate::http::headers;
use crate::cache::key::{self, KeyInput};
use crate::cache::policy::CREDENTIAL_HEADERS;
use crate::config::Config;
use crate::protocol::{self, AnswerCheck, BodyFormat, Keying, ProtocolBypass};
use sha2::{Digest, Sha256};

/// Why a candidate is not keyed.
pub enum NotKeyed {
    /// Over `max_body_bytes`: forward the part read, then the rest.
    TooLarge(Vec<u8>),
    /// The body format sends it around the cache; the body was read in full.
    Bypass(Vec<u8>, ProtocolBypass),
    /// The client's body broke.
    BodyFailed(BodyError),
}

/// Reads the body up to `max_body_bytes` and keys it. In `raw` mode the body is
/// hashed as it arrives and nothing parses it.
/// `no_transform`: the request's `Cache-Control: no-transform`, which keeps
/// its body keyed as raw bytes.
pub async fn read_and_key<B: BodySource>(
    config: &Config,
    request: &mut ClientRequest<B>,
    scoped: bool,
    no_transform: bool,
) -> Result<Keyed, NotKeyed> {
    let format = config.protocol.format;
    let declared = content_length(&request.headers);
    if declared.is_some_and(|n| n > config.max_body_bytes as u64) {
        return Err(NotKeyed::TooLarge(Vec::new()));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0) as usize);
    let mut raw_hasher = (format == BodyFormat::Raw).then(Sha256::new);
    loop {
        match request.body.next_chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > config.max_body_bytes {
                    return Err(NotKeyed::TooLarge(body));
                }
                if let Some(h) = raw_hasher.as_mut() {
                    h.update(&chunk);
                }
            }
            Ok(None) => break,
            Err(e) => return Err(NotKeyed::BodyFailed(e)),
        }
    }
    let (tag, body_digest, check) = match raw_hasher {
        Some(h) => (BodyFormat::Raw.tag(), h.finalize().into(), AnswerCheck::Nothing),
        None => {
            let content_type = headers::values(&request.headers, "content-type").first().copied();
            let url_query = request.path_with_query.split_once('?').map_or("", |(_, q)| q);
            match protocol::key_request(&config.protocol, url_query, content_type, no_transform, &body) {
                Keying::Raw => (BodyFormat::Raw.tag(), Sha256::digest(&body).into(), AnswerCheck::Nothing),
                Keying::Canonical { material, check } => (format.tag(), Sha256::digest(&material).into(), check),
                Keying::Bypass(reason) => return Err(NotKeyed::Bypass(body, reason)),
            }
        }
    };
    let kv_key = derive_key(config, request, scoped, tag, body_digest).kv_key();
    Ok(Keyed { body, body_digest, kv_key, check })
}

fn derive_key<B>(
    config: &Config,
    request: &ClientRequest<B>,
    scoped: bool,
    body_format: u8,
    body_digest: Digest32,
) -> key::CacheKey {
    let (path, query) = match request.path_with_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (request.path_with_query.as_str(), ""),
    };
    let key_headers: Vec<(&str, Vec<&[u8]>)> = config
        .key_headers
        .iter()
        .map(|name| (name.as_str(), headers::values(&request.headers, name)))
        .collect();
    let credential_scope = scoped.then(|| {
        let credentials: Vec<(&str, Vec<&[u8]>)> = CREDENTIAL_HEADERS
            .iter()
            .map(|name| (*name, headers::values(&request.headers, name)))
            .collect();
        key::credential_scope(config.credential_salt.as_bytes(), &credentials)
    });
    key::derive(&KeyInput {
        method: &request.method,
        host: &request.authority,
        path,
        query,
        headers: &key_headers,
        credential_scope,
        body_format,
        body_digest,
    })
}
