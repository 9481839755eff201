//! `wsd-llm-call OUT [codex]`: makes one model call the way a runtime does, from what the
//! workspace was given only, and writes the answer's status line and body to `OUT.<pid>`.
//!
//! - By default, as Claude Code does, an Anthropic Messages call from the environment:
//!   `ANTHROPIC_BASE_URL`, the key in `ANTHROPIC_AUTH_TOKEN` (bearer) or `ANTHROPIC_API_KEY`
//!   (`x-api-key`), `ANTHROPIC_CUSTOM_HEADERS`, `ANTHROPIC_MODEL`.
//! - With `codex`, as Codex does, a Responses call from `~/.codex/config.toml`: the model, its
//!   provider's `base_url`, and the key from the env var its `env_key` names (bearer).
//!
//! Plain HTTP/1.1 over a socket, so it needs nothing but the standard library.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::TcpStream;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What to send: the base URL, the request path under it, headers and body.
struct Call {
    base: String,
    path: &'static str,
    headers: String,
    body: String,
}

fn claude_code() -> Call {
    let credential = match (env("ANTHROPIC_AUTH_TOKEN"), env("ANTHROPIC_API_KEY")) {
        (Some(token), _) => format!("authorization: Bearer {token}\r\n"),
        (None, Some(key)) => format!("x-api-key: {key}\r\n"),
        (None, None) => panic!("no Anthropic credential in the environment"),
    };
    let custom: String =
        env("ANTHROPIC_CUSTOM_HEADERS").map(|h| h.lines().map(|l| format!("{}\r\n", l.trim())).collect()).unwrap_or_default();
    let model = env("ANTHROPIC_MODEL").expect("ANTHROPIC_MODEL is not set");
    Call {
        base: env("ANTHROPIC_BASE_URL").expect("ANTHROPIC_BASE_URL is not set"),
        path: "/v1/messages",
        headers: format!("{credential}{custom}anthropic-version: 2023-06-01\r\n"),
        body: format!(r#"{{"model":{},"max_tokens":16,"messages":[{{"role":"user","content":"hello"}}]}}"#, json_string(&model)),
    }
}

/// The value of the first `name = "value"` line of a TOML file (the few lines wsd writes).
fn toml_value(text: &str, name: &str) -> String {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?.trim_start().strip_prefix('=')?.trim().strip_prefix('"')?.strip_suffix('"').map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("~/.codex/config.toml names no {name}"))
}

fn codex() -> Call {
    let home = env("HOME").expect("HOME is not set");
    let config = std::fs::read_to_string(format!("{home}/.codex/config.toml")).expect("read ~/.codex/config.toml");
    let key_env = toml_value(&config, "env_key");
    let key = env(&key_env).unwrap_or_else(|| panic!("{key_env}, which the config names, is not set"));
    let model = toml_value(&config, "model");
    Call {
        base: toml_value(&config, "base_url"),
        path: "/responses",
        headers: format!("authorization: Bearer {key}\r\n"),
        body: format!(r#"{{"model":{},"input":"hello"}}"#, json_string(&model)),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().expect("usage: wsd-llm-call OUT [codex]");
    let call = if args.next().as_deref() == Some("codex") { codex() } else { claude_code() };
    let rest = call.base.strip_prefix("http://").expect("the base URL must be http:// here");
    let (authority, base_path) = rest.split_once('/').map_or((rest, String::new()), |(a, p)| (a, format!("/{p}")));
    let request = format!(
        "POST {base_path}{} HTTP/1.1\r\nhost: {authority}\r\n{}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        call.path,
        call.headers,
        call.body.len(),
        call.body
    );
    let mut socket = TcpStream::connect(authority).expect("connect to the base URL");
    socket.write_all(request.as_bytes()).expect("send the request");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).expect("read the answer");
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or_default();
    let out = format!("{out}.{}", std::process::id());
    let tmp = format!("{out}.tmp");
    if let Some(parent) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(parent).expect("create the answer's directory");
    }
    std::fs::write(&tmp, format!("{status}\n{body}\n")).expect("write the answer");
    std::fs::rename(&tmp, &out).expect("publish the answer");
    println!("wsd-llm-call: {status}");
}
