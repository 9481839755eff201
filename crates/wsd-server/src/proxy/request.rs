//! A client's request body on its way upstream. Agent requests carry the whole conversation
//! (often hundreds of kilobytes), so the body is split into its top-level fields without
//! building any of them: only `model`, `stream` and `stream_options` are read or changed,
//! every other field is copied through byte for byte.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::code;
use crate::error::ApiError;

pub struct RequestBody<'a> {
    fields: BTreeMap<String, &'a RawValue>,
}

impl<'a> RequestBody<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        let fields = serde_json::from_slice(body)
            .map_err(|_| ApiError::bad_request(code::INVALID_JSON, "the request body is not a valid JSON object"))?;
        Ok(Self { fields })
    }

    /// The `model` the client asked for.
    pub fn model(&self) -> Result<String, ApiError> {
        self.fields
            .get("model")
            .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
            .ok_or_else(|| ApiError::bad_request(code::MODEL_REQUIRED, "the request names no model"))
    }

    /// The most output tokens the request allows: `max_tokens` (Anthropic, chat
    /// completions), `max_output_tokens` (responses) or `max_completion_tokens`.
    pub fn max_output_tokens(&self) -> Option<u64> {
        ["max_tokens", "max_output_tokens", "max_completion_tokens"]
            .iter()
            .filter_map(|name| self.fields.get(*name))
            .find_map(|raw| serde_json::from_str::<u64>(raw.get()).ok())
    }

    /// `"stream": true`.
    pub fn streaming(&self) -> bool {
        self.fields.get("stream").is_some_and(|raw| raw.get().trim() == "true")
    }

    /// The body to send upstream: `model` replaced, and with `include_usage` set the stream
    /// asked to report usage (`stream_options.include_usage`, kept with any other option).
    pub fn render(&self, model: &str, include_usage: bool) -> Vec<u8> {
        let model = serde_json::to_string(model).unwrap_or_default();
        let stream_options = include_usage.then(|| {
            let mut options = self
                .fields
                .get("stream_options")
                .and_then(|raw| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw.get()).ok())
                .unwrap_or_default();
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
            serde_json::Value::Object(options).to_string()
        });
        let size = self.fields.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum::<usize>() + model.len() + 64;
        let mut out = Vec::with_capacity(size);
        out.push(b'{');
        let field = |out: &mut Vec<u8>, key: &str, value: &str| {
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(serde_json::to_string(key).unwrap_or_default().as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        };
        for (key, value) in &self.fields {
            match key.as_str() {
                "model" => field(&mut out, key, &model),
                "stream_options" if stream_options.is_some() => {}
                _ => field(&mut out, key, value.get()),
            }
        }
        if let Some(options) = &stream_options {
            field(&mut out, "stream_options", options);
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn rendered(body: &Value, model: &str, include_usage: bool) -> Value {
        let text = body.to_string();
        let request = RequestBody::parse(text.as_bytes()).unwrap();
        serde_json::from_slice(&request.render(model, include_usage)).unwrap()
    }

    #[test]
    fn only_the_model_changes_and_everything_else_passes_whole() {
        let body = json!({
            "model": "minimax/MiniMax-M2.7",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "be brief \"quoted\" \u{1F600}", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "hi\nthere"}],
            "metadata": {"user_id": "u-1"},
            "temperature": 0.25,
        });
        let text = body.to_string();
        let request = RequestBody::parse(text.as_bytes()).unwrap();
        assert_eq!(request.model().unwrap(), "minimax/MiniMax-M2.7");
        assert!(!request.streaming());
        let mut expected = body.clone();
        expected["model"] = json!("MiniMax-M2.7");
        assert_eq!(rendered(&body, "MiniMax-M2.7", false), expected);
    }

    #[test]
    fn streams_are_asked_for_usage_keeping_other_options() {
        let body = json!({"model": "openai/gpt-5", "stream": true, "messages": []});
        assert!(RequestBody::parse(body.to_string().as_bytes()).unwrap().streaming());
        assert_eq!(rendered(&body, "gpt-5", true)["stream_options"], json!({"include_usage": true}));
        let with_options =
            json!({"model": "openai/gpt-5", "stream": true, "stream_options": {"include_obfuscation": false, "include_usage": false}});
        assert_eq!(rendered(&with_options, "gpt-5", true)["stream_options"], json!({"include_obfuscation": false, "include_usage": true}));
        assert_eq!(
            rendered(&with_options, "gpt-5", false)["stream_options"],
            json!({"include_obfuscation": false, "include_usage": false})
        );
    }

    #[test]
    fn what_is_not_a_request_is_refused_with_a_code() {
        for bad in ["", "[]", "{\"model\":", "not json", "\"model\""] {
            let err = RequestBody::parse(bad.as_bytes()).err().unwrap();
            assert_eq!(err.code, "INVALID_JSON", "{bad}");
        }
        for body in [json!({}), json!({"model": 5}), json!({"model": null})] {
            let text = body.to_string();
            assert_eq!(RequestBody::parse(text.as_bytes()).unwrap().model().err().unwrap().code, "MODEL_REQUIRED");
        }
        let text = json!({"model": "a/b", "stream": "true"}).to_string();
        assert!(!RequestBody::parse(text.as_bytes()).unwrap().streaming(), "only the JSON true streams");
    }
}
