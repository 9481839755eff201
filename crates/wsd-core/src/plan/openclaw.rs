//! The OpenClaw `openclaw.json` the planner renders. OpenClaw's own providers read key
//! names of their own choosing (`MINIMAX_CODE_PLAN_KEY` before `MINIMAX_API_KEY`,
//! `CODEX_API_KEY` before `OPENAI_API_KEY`) and ignore every base-URL env but one, so the
//! file defines a provider of wsd's own instead: its base URL, its API kind, its model, and
//! its key as a `${NAME}` reference that OpenClaw resolves from the env. It names env vars,
//! never holds a secret value.

use serde_json::json;

use crate::env_key::EnvKey;
use crate::registry::Protocol;

/// The provider and model rendered into `openclaw.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenclawConfig {
    /// `wsd-<provider>`: never the id of one of OpenClaw's own providers, whose key names
    /// and endpoints it would otherwise merge in.
    pub provider_id: String,
    pub protocol: Protocol,
    pub base_url: String,
    pub key_env: EnvKey,
    /// The id sent to the provider.
    pub model: String,
}

impl OpenclawConfig {
    /// OpenClaw's request adapter for the protocol.
    pub fn api(&self) -> &'static str {
        match self.protocol {
            Protocol::Anthropic => "anthropic-messages",
            Protocol::Openai => "openai-completions",
        }
    }

    /// How the adapter sends the key.
    pub fn sent_as(&self) -> &'static str {
        match self.protocol {
            Protocol::Anthropic => "x-api-key",
            Protocol::Openai => "Authorization: Bearer",
        }
    }

    /// The file: `models.mode: replace` keeps OpenClaw's own provider catalogue out, the
    /// default model names the provider (`wsd-minimax/MiniMax-M2.7`), and no utility model
    /// is derived for side tasks.
    pub fn render(&self) -> String {
        let document = json!({
            "agents": {
                "defaults": {
                    "model": { "primary": format!("{}/{}", self.provider_id, self.model) },
                    "utilityModel": "",
                }
            },
            "models": {
                "mode": "replace",
                "providers": {
                    self.provider_id.as_str(): {
                        "api": self.api(),
                        "apiKey": format!("${{{}}}", self.key_env),
                        "baseUrl": self.base_url,
                        "models": [{ "id": self.model, "name": self.model }],
                    }
                }
            }
        });
        let mut text = serde_json::to_string_pretty(&document).expect("a JSON value always serializes");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(protocol: Protocol) -> OpenclawConfig {
        OpenclawConfig {
            provider_id: "wsd-minimax".into(),
            protocol,
            base_url: "https://api.minimax.io/anthropic".into(),
            key_env: EnvKey::new("MINIMAX_API_KEY").unwrap(),
            model: "MiniMax-M2.7".into(),
        }
    }

    #[test]
    fn renders_a_provider_of_its_own_that_names_the_key_env() {
        insta::assert_snapshot!(config(Protocol::Anthropic).render(), @r#"
        {
          "agents": {
            "defaults": {
              "model": {
                "primary": "wsd-minimax/MiniMax-M2.7"
              },
              "utilityModel": ""
            }
          },
          "models": {
            "mode": "replace",
            "providers": {
              "wsd-minimax": {
                "api": "anthropic-messages",
                "apiKey": "${MINIMAX_API_KEY}",
                "baseUrl": "https://api.minimax.io/anthropic",
                "models": [
                  {
                    "id": "MiniMax-M2.7",
                    "name": "MiniMax-M2.7"
                  }
                ]
              }
            }
          }
        }
        "#);
    }

    #[test]
    fn each_protocol_has_its_adapter_and_header() {
        let anthropic = config(Protocol::Anthropic);
        let openai = config(Protocol::Openai);
        assert_eq!((anthropic.api(), anthropic.sent_as()), ("anthropic-messages", "x-api-key"));
        assert_eq!((openai.api(), openai.sent_as()), ("openai-completions", "Authorization: Bearer"));
        assert!(openai.render().contains("\"api\": \"openai-completions\""));
    }

    #[test]
    fn ids_cannot_break_out_of_the_document() {
        let mut c = config(Protocol::Anthropic);
        c.model = "m\"}, \"x\": {\"y".into();
        let parsed: serde_json::Value = serde_json::from_str(&c.render()).unwrap();
        assert_eq!(parsed["models"]["providers"]["wsd-minimax"]["models"][0]["id"], c.model.as_str());
        assert_eq!(parsed["agents"]["defaults"]["model"]["primary"], format!("wsd-minimax/{}", c.model).as_str());
    }
}
