//! The registry as JSON, for `wsd registry show --json` and `GET /v1/registry/…`.

use serde_json::{Value, json};
use wsd_core::Registry;
use wsd_core::registry::Projection;

pub fn providers(registry: &Registry) -> Value {
    registry
        .providers()
        .iter()
        .map(|p| {
            json!({
                "name": p.name, "display_name": p.display_name, "protocol": p.protocol, "auth_mode": p.auth_mode,
                "platform": p.platform, "auth_env": p.auth_env, "auth_token_env": p.auth_token_env,
                "base_url_openai": p.base_url_openai, "base_url_anthropic": p.base_url_anthropic,
                "model_match": p.model_match.as_str(), "model_aliases": p.model_aliases,
                "upstream_vendor": p.upstream_vendor, "deprecated": p.deprecated,
            })
        })
        .collect()
}

pub fn runtimes(registry: &Registry) -> Value {
    registry
        .runtimes()
        .map(|r| {
            let natives: Vec<_> = registry
                .native_providers(r)
                .map(|(p, models)| json!({"provider": p.name, "models": models, "verified_on": registry.verified_on(r, &p.name)}))
                .collect();
            let precedence: Vec<Vec<String>> =
                r.credential_precedence.iter().map(|tier| tier.iter().map(|c| c.source.to_string()).collect()).collect();
            json!({
                "name": r.name, "display_name": r.display_name, "protocol": r.protocol,
                "model_ids": r.model_ids, "model_env": r.model_env, "hardening_env": r.hardening_env,
                "credential_precedence": precedence, "base_url_env": r.base_url_env, "default_base_url": r.default_base_url,
                "projection": projection(&r.projection), "providers": natives, "requires": r.requires,
            })
        })
        .collect()
}

pub fn registry(registry: &Registry) -> Value {
    json!({
        "providers": providers(registry),
        "runtimes": runtimes(registry),
        "credential_keys": registry.credential_keys(),
        "routing_keys": registry.routing_keys(),
    })
}

fn projection(projection: &Projection) -> String {
    match projection {
        Projection::Env { key_env, base_url_env, .. } => format!("env: key in {key_env}, base URL in {base_url_env}"),
        Projection::CodexConfig { path, .. } | Projection::OpenclawConfig { path } => format!("config file ~/{path}"),
    }
}
