//! The Codex `config.toml` the planner renders: it names the provider, its base URL and the
//! env var that holds its key, because `codex exec` ignores `OPENAI_API_KEY` and
//! `OPENAI_BASE_URL`. It names env vars, never holds a secret value.

use crate::env_key::EnvKey;

/// A custom model provider entry: with it, Codex reads its key only from `env_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexProvider {
    pub id: String,
    pub display_name: String,
    pub base_url: String,
    pub env_key: EnvKey,
}

/// The settings rendered into `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexConfig {
    pub model: String,
    /// `None`: Codex's built-in provider with its login file.
    pub provider: Option<CodexProvider>,
}

impl CodexConfig {
    pub fn render(&self) -> String {
        let mut out = String::from("# Written by wsd for this workspace. It names env vars, never secret values.\n");
        out.push_str(&format!("model = {}\n", toml_string(&self.model)));
        if let Some(p) = &self.provider {
            out.push_str(&format!("model_provider = {}\n\n", toml_string(&p.id)));
            out.push_str(&format!("[model_providers.{}]\n", toml_string(&p.id)));
            out.push_str(&format!("name = {}\n", toml_string(&p.display_name)));
            out.push_str(&format!("base_url = {}\n", toml_string(&p.base_url)));
            out.push_str(&format!("env_key = {}\n", toml_string(p.env_key.as_str())));
            out.push_str("wire_api = \"responses\"\n");
        }
        out
    }
}

/// A TOML basic string, escaped so that no model id can break out of it.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_custom_provider_that_names_the_key_env() {
        let config = CodexConfig {
            model: "gpt-5.5".into(),
            provider: Some(CodexProvider {
                id: "openai-api".into(),
                display_name: "OpenAI API".into(),
                base_url: "https://api.openai.com/v1".into(),
                env_key: EnvKey::new("OPENAI_API_KEY").unwrap(),
            }),
        };
        insta::assert_snapshot!(config.render(), @r#"
        # Written by wsd for this workspace. It names env vars, never secret values.
        model = "gpt-5.5"
        model_provider = "openai-api"

        [model_providers."openai-api"]
        name = "OpenAI API"
        base_url = "https://api.openai.com/v1"
        env_key = "OPENAI_API_KEY"
        wire_api = "responses"
        "#);
    }

    #[test]
    fn without_a_provider_only_the_model_is_set() {
        let config = CodexConfig { model: "gpt-5.5".into(), provider: None };
        assert_eq!(config.render().lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), ["model = \"gpt-5.5\""]);
    }

    #[test]
    fn strings_cannot_break_out() {
        assert_eq!(toml_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(toml_string("tab\there\r"), "\"tab\\there\\r\"");
    }
}
