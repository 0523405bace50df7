//! Request paths joined onto the origin's base path.

/// Why a request path cannot be sent to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Its dot segments climb above the root: joined onto a base path, it
    /// would name something outside it.
    ClimbsOut,
    /// A segment hides a dot segment or a separator behind percent-encoding
    /// (`..%2f`, `%5c`): origins that decode before normalising would climb
    /// where this cache cannot see.
    HiddenSeparator,
}

/// The request's path with its dot segments removed (RFC 3986 §5.2.4), the
/// query (with its `?`) kept as it is.
///
/// RFC 3986 §5.2.4: "The pseudocode also refers to a 'remove_dot_segments'
/// routine for interpreting and removing the special '.' and '..' complete path
/// segments from a referenced path." Many origins apply it before routing, so a
/// path must be normalised before it is appended to the base path: otherwise
/// `/../admin` under `https://host/api` reaches `https://host/admin`. A `.` or
/// `..` spelled with `%2e` is one too (RFC 3986 §6.2.2.2: percent-encoded
/// unreserved characters "should be decoded"), and a segment that would become
/// one only once `%2f` or `%5c` is decoded is refused.
pub fn normalize(path_with_query: &str) -> Result<String, PathError> {
    let (path, query) = match path_with_query.find('?') {
        Some(i) => path_with_query.split_at(i),
        None => (path_with_query, ""),
    };
    if path.is_empty() {
        return Ok(format!("/{query}"));
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let last = segments.len() - 1;
    // A path ending in a dot segment names a directory: it keeps its slash.
    let mut trailing_slash = false;
    for (i, segment) in segments.iter().enumerate() {
        match dot_segment(segment)? {
            Some(Dot::Current) => trailing_slash = i == last,
            Some(Dot::Parent) => {
                if out.pop().is_none() {
                    return Err(PathError::ClimbsOut);
                }
                trailing_slash = i == last;
            }
            None => {
                out.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut normalized = String::with_capacity(path.len() + query.len());
    for segment in &out {
        normalized.push('/');
        normalized.push_str(segment);
    }
    if trailing_slash || normalized.is_empty() {
        normalized.push('/');
    }
    normalized.push_str(query);
    Ok(normalized)
}

enum Dot {
    Current,
    Parent,
}

/// Whether a segment is `.` or `..`, percent-encoded or not.
fn dot_segment(segment: &str) -> Result<Option<Dot>, PathError> {
    if !segment.contains('%') && !segment.contains('\\') {
        return Ok(match segment {
            "." => Some(Dot::Current),
            ".." => Some(Dot::Parent),
            _ => None,
        });
    }
    let decoded = decode_dots_and_separators(segment);
    let separator = |b: &u8| *b == b'/' || *b == b'\\';
    if decoded.iter().any(separator) && decoded.split(separator).any(|part| part == b"." || part == b"..") {
        return Err(PathError::HiddenSeparator);
    }
    Ok(match decoded.as_slice() {
        b"." => Some(Dot::Current),
        b".." => Some(Dot::Parent),
        _ => None,
    })
}

/// Decodes only `%2e`, `%2f` and `%5c` (either case): what can make or hide a
/// dot segment. Other bytes are kept as they are.
fn decode_dots_and_separators(segment: &str) -> Vec<u8> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let decoded = match [bytes[i + 1].to_ascii_lowercase(), bytes[i + 2].to_ascii_lowercase()] {
                [b'2', b'e'] => Some(b'.'),
                [b'2', b'f'] => Some(b'/'),
                [b'5', b'c'] => Some(b'\\'),
                _ => None,
            };
            if let Some(b) = decoded {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_removed_and_the_query_is_kept_as_it_is() {
        let cases = [
            ("/graphql", "/graphql"),
            ("", "/"),
            ("/", "/"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a//b", "/a//b"),
            ("/a/%2e%2E/b", "/b"),
            ("/a/.%2e/b?x=/../y", "/b?x=/../y"),
            ("/a/%2e/b", "/a/b"),
            ("/a/..b/c", "/a/..b/c"),
            ("/a/%41", "/a/%41"),
            ("/a?", "/a?"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn a_path_that_climbs_above_the_root_is_refused() {
        for input in ["/..", "/../admin", "/a/../../admin", "/%2e%2e/admin", "/a/.%2E/%2e./x"] {
            assert_eq!(normalize(input), Err(PathError::ClimbsOut), "{input}");
        }
    }

    #[test]
    fn a_dot_segment_hidden_behind_an_encoded_separator_is_refused() {
        for input in ["/a/..%2fadmin", "/a/..%2Fadmin", "/a/%2e%2e%5cadmin", "/a/x%2f..", "/a/..\\admin"] {
            assert_eq!(normalize(input), Err(PathError::HiddenSeparator), "{input}");
        }
        // Encoded separators without dot segments are the origin's business.
        assert_eq!(normalize("/a/b%2fc").as_deref(), Ok("/a/b%2fc"));
    }
}
