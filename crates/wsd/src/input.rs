//! Command-line inputs that need more than clap: `KEY=VALUE` secrets and registry files.
//!
//! Invariant: secret values are parsed into `SecretValue` and never echoed, not even in the
//! error for a malformed argument.

use std::collections::BTreeMap;
use std::path::Path;

use wsd_core::{EnvKey, Registry, SecretValue};

use crate::Failure;

/// Parses repeated `KEY=VALUE` arguments of one scope.
pub fn parse_secrets(flag: &str, args: &[String]) -> Result<BTreeMap<EnvKey, SecretValue>, Failure> {
    let mut secrets = BTreeMap::new();
    for (position, arg) in args.iter().enumerate() {
        let Some((name, value)) = arg.split_once('=') else {
            return Err(Failure::Usage(format!("{flag} #{}: expected KEY=VALUE", position + 1)));
        };
        let key = EnvKey::new(name).map_err(|e| Failure::Usage(format!("{flag} #{}: invalid KEY {name:?}: {e}", position + 1)))?;
        if value.is_empty() {
            return Err(Failure::Usage(format!("{flag} {key}: the value is empty; secrets hold non-empty values")));
        }
        if secrets.insert(key.clone(), SecretValue::new(value)).is_some() {
            return Err(Failure::Usage(format!("{flag} {key} is given twice")));
        }
    }
    Ok(secrets)
}

/// Loads the registry from `file`, or the embedded one.
pub fn load_registry(file: Option<&Path>) -> Result<Registry, Failure> {
    match file {
        None => Registry::embedded().map_err(|e| Failure::Usage(format!("the embedded registry is invalid: {e}"))),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Failure::Usage(format!("cannot read registry file {}: {e}", path.display())))?;
            Registry::from_yaml(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(result: Result<BTreeMap<EnvKey, SecretValue>, Failure>) -> String {
        match result {
            Err(Failure::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn parses_pairs_and_keeps_everything_after_the_first_equals() {
        let parsed = parse_secrets("--org-secret", &["A=1".into(), "B=x=y".into()]).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[&EnvKey::new("B").unwrap()].expose(), "x=y");
    }

    #[test]
    fn malformed_arguments_are_refused_without_echoing_values() {
        let canary = "canary-value-4d1c";
        let messages = [
            usage(parse_secrets("--org-secret", &[format!("NOEQUALS{canary}")])),
            usage(parse_secrets("--org-secret", &[format!("bad-key={canary}")])),
            usage(parse_secrets("--org-secret", &["EMPTY=".into()])),
            usage(parse_secrets("--org-secret", &[format!("A={canary}"), format!("A={canary}")])),
        ];
        assert!(messages[0].contains("expected KEY=VALUE"));
        assert!(messages[1].contains("invalid KEY"));
        assert!(messages[2].contains("empty"));
        assert!(messages[3].contains("given twice"));
        for message in messages {
            assert!(!message.contains(canary), "{message}");
        }
    }
}
