//! `fermyon:spin/variables@2.0.0`: component variables by name, as Spin resolves
//! them (spin.toml defaults overridden by `SPIN_VARIABLE_*`).

use crate::server::RequestState;
use crate::spin::fermyon::spin::variables::{Error, Host};

/// Spin's variable names: lower-case ASCII letters, digits and single
/// underscores, starting with a letter and not ending with an underscore.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && !name.contains("__")
        && !name.ends_with('_')
}

impl Host for RequestState {
    async fn get(&mut self, name: String) -> Result<String, Error> {
        if !valid_name(&name) {
            return Err(Error::InvalidName(format!("invalid variable name {name:?}")));
        }
        match self.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(Error::Undefined(format!("no variable for {name:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names() {
        for ok in ["origin", "default_ttl", "a1"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Origin", "1a", "a-b", "a__b", "a_", "_a"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
