//! `wsd-llm-call OUT`: makes one Anthropic Messages call the way Claude Code does, from its
//! environment only — `ANTHROPIC_BASE_URL`, the key in `ANTHROPIC_AUTH_TOKEN` (bearer) or
//! `ANTHROPIC_API_KEY` (`x-api-key`), `ANTHROPIC_CUSTOM_HEADERS`, `ANTHROPIC_MODEL` — and
//! writes the answer's status line and body to `OUT.<pid>`. Plain HTTP/1.1 over a socket,
//! so it needs nothing but the standard library.
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

fn main() {
    let out = std::env::args().nth(1).expect("usage: wsd-llm-call OUT");
    let base = env("ANTHROPIC_BASE_URL").expect("ANTHROPIC_BASE_URL is not set");
    let rest = base.strip_prefix("http://").expect("ANTHROPIC_BASE_URL must be http:// here");
    let (authority, path) = rest.split_once('/').map_or((rest, String::new()), |(a, p)| (a, format!("/{p}")));
    let credential = match (env("ANTHROPIC_AUTH_TOKEN"), env("ANTHROPIC_API_KEY")) {
        (Some(token), _) => format!("authorization: Bearer {token}\r\n"),
        (None, Some(key)) => format!("x-api-key: {key}\r\n"),
        (None, None) => panic!("no Anthropic credential in the environment"),
    };
    let custom: String =
        env("ANTHROPIC_CUSTOM_HEADERS").map(|h| h.lines().map(|l| format!("{}\r\n", l.trim())).collect()).unwrap_or_default();
    let model = env("ANTHROPIC_MODEL").expect("ANTHROPIC_MODEL is not set");
    let body = format!(r#"{{"model":{},"max_tokens":16,"messages":[{{"role":"user","content":"hello"}}]}}"#, json_string(&model));
    let request = format!(
        "POST {path}/v1/messages HTTP/1.1\r\nhost: {authority}\r\n{credential}{custom}anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = TcpStream::connect(authority).expect("connect to ANTHROPIC_BASE_URL");
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
