//! The console in a real browser: headless Chromium driven through its WebDriver, against a
//! wsd on loopback. A person signs in, reads a workspace's plan, sets a secret, is refused a
//! workspace whose plan cannot be made, meets another org's workspace as not found, and
//! signs out; a page of another origin posts a form into the console and is refused. No
//! page holds a secret value. A screenshot of each page is written under
//! `target/tmp/console-screenshots/`.
//!
//! Where Chromium's WebDriver is not installed these tests are ignored at build time, never
//! passed; CI sets `WSD_TEST_REQUIRE_BROWSER=1`, which makes a missing browser fail them.
#![allow(clippy::disallowed_methods)]
#![cfg_attr(not(wsd_test_browser), allow(dead_code, unused_imports))]

mod support;

use support::webdriver::Browser;
use support::{ADMIN, Backend, Options};

const CANARY: &str = "canary-browser-minimax-key-7d41";
const TYPED: &str = "canary-browser-typed-secret-0c93";

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots").join(format!("{name}.png"))
}

/// A page of another origin whose form posts into the console (without its CSRF token).
async fn hostile_page(target: String) -> String {
    let html = format!(
        "<!DOCTYPE html><html><body><form id=\"attack\" method=\"post\" action=\"{target}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"guessed\"><button id=\"go\" type=\"submit\">win a prize</button></form></body></html>"
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}/")
}

#[cfg_attr(not(wsd_test_browser), ignore = "Chromium's WebDriver is not installed (apt-get install chromium chromium-driver)")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_console_in_a_browser() {
    let root = std::env::temp_dir().join(format!("wsd-browser-ws-{}", std::process::id()));
    let api = support::start_with(Backend::Sqlite, "browser", false, None, Options { runner: Some(root), ..Options::default() }).await;
    let acme = api.org("acme").await;
    api.secret(&acme, "MINIMAX_API_KEY", CANARY).await;
    let alpha = api.workspace(&acme, "alpha", "claude-code", "MiniMax-M2.7").await;
    api.workspace(&acme, "beta", "claude-code", "MiniMax-M2.7").await;
    let other = api.org("other").await;
    api.secret(&other, "MINIMAX_API_KEY", "canary-browser-other-key-55e0").await;
    let theirs = api.workspace(&other, "theirs", "claude-code", "MiniMax-M2.7").await;
    let token = api.org_token(&acme).await;
    let base = api.base.clone();
    let browser = Browser::start().await;
    let mut pages = Vec::new();

    browser.open(&format!("{base}/console/workspaces")).await;
    let url = browser.url_ending("/console/sign-in").await;
    assert!(url.ends_with("/console/sign-in"), "{url}");
    browser.screenshot(&shot("sign-in")).await;
    browser.type_into("#token", &token).await;
    browser.click("form[action='/console/sign-in'] button").await;
    let url = browser.url_ending("/console/workspaces").await;
    assert!(url.ends_with("/console/workspaces"), "{url}");
    let list = browser.source_with("alpha").await;
    assert!(list.contains("alpha") && list.contains("beta") && !list.contains("theirs"), "{list}");
    browser.screenshot(&shot("workspaces")).await;
    pages.push(list);

    browser.click(&format!("a[href='/console/orgs/{acme}/workspaces/{alpha}']")).await;
    let page = browser.source_with("Decisions").await;
    for shown in ["Decisions", "MINIMAX_API_KEY", "kept", "ANTHROPIC_AUTH_TOKEN", "Authorization: Bearer", "Parity"] {
        assert!(page.contains(shown), "{shown} on the workspace page: {page}");
    }
    browser.click("form[action$='/provision'] button").await;
    let running = browser.source_with("status running").await;
    assert!(running.contains("status running"), "provisioned from the page: {running}");
    browser.screenshot(&shot("workspace")).await;
    pages.push(running);

    browser.open(&format!("{base}/console/orgs/{acme}/secrets")).await;
    browser.type_into("#key", "OPENAI_API_KEY").await;
    browser.type_into("#value", TYPED).await;
    browser.click("form.stacked button").await;
    let secrets = browser.source_with("OPENAI_API_KEY").await;
    assert!(secrets.contains("OPENAI_API_KEY") && secrets.contains("MINIMAX_API_KEY"), "{secrets}");
    browser.screenshot(&shot("secrets")).await;
    pages.push(secrets);

    // A workspace whose plan cannot be made (a platform model on a server without the
    // platform) is refused, and the page says why and what to do.
    browser.open(&format!("{base}/console/workspaces")).await;
    browser.click("details.create summary").await;
    browser.type_into("#name", "anthropic").await;
    browser.type_into("#model", "anthropic/claude-sonnet-4-6").await;
    browser.click("details.create button").await;
    let refused = browser.source_with("Refused").await;
    assert!(
        refused.contains("Refused") && refused.contains("MISSING_PLATFORM_PROXY") && refused.contains("use a model of your own provider"),
        "{refused}"
    );
    browser.screenshot(&shot("refused-create")).await;
    pages.push(refused);

    // A month of metered requests, for the usage page to show.
    let rows: Vec<wsd_store::UsageRecord> = (0..30_i64)
        .map(|day| wsd_store::UsageRecord {
            at: wsd_store::now_ms() - day * 86_400_000,
            org_id: acme.clone(),
            workspace_id: alpha.clone(),
            provider: "minimax".into(),
            model: "MiniMax-M2.7".into(),
            input_tokens: 2_000 + (day * 7_919) % 9_000,
            output_tokens: 300 + (day * 613) % 900,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            status: 200,
            latency_ms: 800 + day * 13,
            request_id: format!("req-{day}"),
            routing: "byok".into(),
            cost_micros: Some(4_000 + day * 97),
            reservation: None,
        })
        .collect();
    api.state.store.append_usage(&rows).await.unwrap();
    browser.open(&format!("{base}/console/orgs/{acme}/usage")).await;
    let usage = browser.source().await;
    assert!(usage.contains("Tokens by day") && usage.contains("<svg"), "{usage}");
    browser.screenshot(&shot("usage")).await;
    pages.push(usage);

    browser.open(&format!("{base}/console/orgs/{other}/workspaces/{theirs}")).await;
    let not_found = browser.source().await;
    assert!(not_found.contains("HTTP 404") && !not_found.contains("theirs"), "{not_found}");
    pages.push(not_found);

    // A page of another origin posts a stop into the console: refused, the workspace runs on.
    let hostile = hostile_page(format!("{base}/console/orgs/{acme}/workspaces/{alpha}/stop")).await;
    browser.open(&hostile).await;
    browser.click("#go").await;
    let answered = browser.source_with("</main>").await;
    assert!(answered.contains("CSRF_REJECTED") || answered.contains("Sign in"), "{answered}");
    let ws = api.get(&format!("/v1/orgs/{acme}/workspaces/{alpha}"), ADMIN).await;
    assert_eq!(ws.body["status"], "running", "a forged form changed nothing");
    pages.push(answered);

    browser.open(&format!("{base}/console/workspaces")).await;
    browser.click("form[action='/console/sign-out'] button").await;
    let url = browser.url_ending("/console/sign-in").await;
    assert!(url.ends_with("/console/sign-in"), "{url}");
    browser.open(&format!("{base}/console/workspaces")).await;
    let url = browser.url_ending("/console/sign-in").await;
    assert!(url.ends_with("/console/sign-in"), "{url}");

    // The operator's page, with the admin token.
    browser.type_into("#token", ADMIN).await;
    browser.click("form[action='/console/sign-in'] button").await;
    let url = browser.url_ending("/console/workspaces").await;
    assert!(url.ends_with("/console/workspaces"), "{url}");
    browser.open(&format!("{base}/console/orgs")).await;
    let operations = browser.source_with("Platform keys").await;
    assert!(operations.contains("acme") && operations.contains("other") && operations.contains("Backends"), "{operations}");
    browser.screenshot(&shot("operations")).await;
    pages.push(operations);

    for page in &pages {
        for canary in [CANARY, TYPED, "canary-browser-other-key-55e0"] {
            assert!(!page.contains(canary), "a secret value in a page: {page}");
        }
    }
    browser.quit().await;
    api.post(&format!("/v1/orgs/{acme}/workspaces/{alpha}/stop"), ADMIN, serde_json::json!({})).await;
}
