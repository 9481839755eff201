//! The web console over loopback, as a browser without script would use it: cookies kept by
//! hand, redirects not followed, every page read as HTML.
#![allow(clippy::disallowed_methods)]

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::{ADMIN, Api, Backend, Options};

const CANARY: &str = "canary-console-minimax-key-4f2e";

struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    headers: reqwest::header::HeaderMap,
    html: String,
}

impl Browser {
    fn new(api: &Api) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: api.base.clone(), client, cookies: Default::default() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if cookie.is_empty() { request } else { request.header("cookie", cookie.join("; ")) };
        let response = request.send().await.unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        let headers = response.headers().clone();
        let html = response.text().await.unwrap();
        assert!(!html.contains(CANARY), "a secret value in a page: {html}");
        Page { status, location, headers, html }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let encode = |v: &str| -> String {
            v.bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect()
        };
        let body: Vec<String> = form.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(request).await
    }

    /// Signs in with `token` through the sign-in form.
    async fn sign_in(&mut self, token: &str) -> Page {
        let form = self.get("/console/sign-in").await;
        let bound = hidden(&form.html, "form");
        self.post("/console/sign-in", &[("form", &bound), ("token", token)]).await
    }
}

/// The value of the hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn server(label: &str) -> Api {
    let root = std::env::temp_dir().join(format!("wsd-console-{label}-{}", std::process::id()));
    support::start_with(Backend::Sqlite, label, false, None, Options { runner: Some(root), ..Options::default() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_signs_in_sees_its_workspaces_and_plans_acts_and_signs_out() {
    let api = server("console-org").await;
    let acme = api.org("acme").await;
    api.secret(&acme, "MINIMAX_API_KEY", CANARY).await;
    let alpha = api.workspace(&acme, "alpha", "claude-code", "MiniMax-M2.7").await;
    let other = api.org("other").await;
    api.secret(&other, "MINIMAX_API_KEY", "canary-console-other-key-19a3").await;
    let beta = api.workspace(&other, "beta", "claude-code", "MiniMax-M2.7").await;
    let token = api.org_token(&acme).await;
    let mut browser = Browser::new(&api);

    let page = browser.get("/console/workspaces").await;
    assert_eq!((page.status, page.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/sign-in")));
    let form = browser.get("/console/sign-in").await;
    let csp = form.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(form.headers.get("cache-control").unwrap(), "no-store");

    // A sign-in form that this browser did not load is refused (no login CSRF).
    let forged = browser.post("/console/sign-in", &[("form", "forged"), ("token", &token)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = browser.sign_in("wsd_not-a-token").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.html.contains("not a valid"));

    let signed_in = browser.sign_in(&token).await;
    assert_eq!((signed_in.status, signed_in.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/workspaces")));
    let set = signed_in.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).find(|c| c.starts_with("wsd_session=")).unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains(&token), "the cookie holds a session id, never the token");

    let list = browser.get("/console/workspaces").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.html.contains(">alpha<") && list.html.contains("minimax") && list.html.contains("byok"), "{}", list.html);
    assert!(!list.html.contains("beta"), "another org's workspace is listed");
    assert!(list.html.contains("<span class=\"who\">org acme</span>"), "the header names the org: {}", list.html);
    let filtered = browser.get("/console/workspaces?status=running").await;
    assert!(!filtered.html.contains(">alpha<") && filtered.html.contains("No workspace matches"));

    // Another org's workspace is not found, as through the API.
    assert_eq!(browser.get(&format!("/console/orgs/{other}/workspaces/{beta}")).await.status, StatusCode::NOT_FOUND);

    let page = browser.get(&format!("/console/orgs/{acme}/workspaces/{alpha}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in ["MINIMAX_API_KEY", "kept", "ANTHROPIC_AUTH_TOKEN", "Authorization: Bearer", "Decisions", "Parity"] {
        assert!(page.html.contains(shown), "{shown} is not on the workspace page: {}", page.html);
    }
    let csrf = hidden(&page.html, "csrf");

    // A form without the session's CSRF token does nothing.
    let forged = browser.post(&format!("/console/orgs/{acme}/workspaces/{alpha}/provision"), &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.html.contains("CSRF_REJECTED"));
    let ws = api.get(&format!("/v1/orgs/{acme}/workspaces/{alpha}"), ADMIN).await;
    assert_eq!(ws.body["status"], "created");
    let done = browser.post(&format!("/console/orgs/{acme}/workspaces/{alpha}/provision"), &[("csrf", &csrf)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let ws = api.get(&format!("/v1/orgs/{acme}/workspaces/{alpha}"), ADMIN).await;
    assert_eq!(ws.body["status"], "running");
    let stopped = browser.post(&format!("/console/orgs/{acme}/workspaces/{alpha}/stop"), &[("csrf", &csrf)]).await;
    assert_eq!(stopped.status, StatusCode::SEE_OTHER);

    let forged = browser.post("/console/sign-out", &[("csrf", "forged")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let session = browser.cookies["wsd_session"].clone();
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/sign-in")));
    assert!(!browser.cookies.contains_key("wsd_session"));
    browser.cookies.insert("wsd_session".into(), session);
    assert_eq!(browser.get("/console/workspaces").await.status, StatusCode::SEE_OTHER, "a closed session stays closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_explained_names_are_escaped_and_a_revoked_token_ends_its_session() {
    let api = server("console-refusal").await;
    let acme = api.org("acme").await;
    api.secret(&acme, "MINIMAX_API_KEY", CANARY).await;
    let odd = api.workspace(&acme, "<b>bold</b>&co", "claude-code", "MiniMax-M2.7").await;
    assert_eq!(api.delete(&format!("/v1/orgs/{acme}/secrets/MINIMAX_API_KEY"), ADMIN).await.status, StatusCode::NO_CONTENT);
    let token = api.org_token(&acme).await;
    let mut browser = Browser::new(&api);
    browser.sign_in(&token).await;

    let list = browser.get("/console/workspaces").await;
    assert!(list.html.contains("&lt;b&gt;bold&lt;/b&gt;&amp;co") && !list.html.contains("<b>bold"), "{}", list.html);
    assert!(list.html.contains("MISSING_BYOK_CREDENTIAL"), "the refused plan shows its code: {}", list.html);
    let page = browser.get(&format!("/console/orgs/{acme}/workspaces/{odd}")).await;
    assert!(page.html.contains("MISSING_BYOK_CREDENTIAL") && page.html.contains("Set the provider"), "{}", page.html);
    let csrf = hidden(&page.html, "csrf");
    let refused = browser.post(&format!("/console/orgs/{acme}/workspaces/{odd}/provision"), &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.html.contains("MISSING_BYOK_CREDENTIAL"));

    // A workspace is created from the console, or refused with the reason.
    let csrf = hidden(&browser.get("/console/workspaces").await.html, "csrf");
    let form = [("csrf", csrf.as_str()), ("org", acme.as_str()), ("name", "gpt"), ("runtime", "codex"), ("model", "openai-api/gpt-5.5")];
    let refused = browser.post("/console/workspaces", &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.html.contains("MISSING_BYOK_CREDENTIAL")
            && refused.html.contains("OPENAI_API_KEY")
            && refused.html.contains("Set the provider"),
        "{}",
        refused.html
    );
    api.secret(&acme, "OPENAI_API_KEY", "canary-console-openai-key-2b8d").await;
    let created = browser.post("/console/workspaces", &form).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    assert!(created.location.unwrap().starts_with(&format!("/console/orgs/{acme}/workspaces/")));
    let forged = browser
        .post("/console/workspaces", &[("csrf", "x"), ("org", &acme), ("name", "n"), ("runtime", "codex"), ("model", "gpt-5.5")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // The admin token revokes the org token: its session ends with it.
    let tokens = api.get(&format!("/v1/orgs/{acme}/tokens"), ADMIN).await;
    let id = tokens.body["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.delete(&format!("/v1/orgs/{acme}/tokens/{id}"), ADMIN).await.status, StatusCode::NO_CONTENT);
    let after = browser.get("/console/workspaces").await;
    assert_eq!((after.status, after.location.as_deref()), (StatusCode::SEE_OTHER, Some("/console/sign-in")));

    // The operator's page is the admin token's only.
    let mut org_user = Browser::new(&api);
    org_user.sign_in(&api.org_token(&acme).await).await;
    assert_eq!(org_user.get("/console/orgs").await.status, StatusCode::FORBIDDEN);

    // The admin token sees every org, the platform keys by name, runtimes and backends.
    let mut operator = Browser::new(&api);
    operator.sign_in(ADMIN).await;
    api.put("/v1/platform/secrets/MINIMAX_API_KEY", ADMIN, json!({"value": CANARY})).await;
    let ops = operator.get("/console/orgs").await;
    assert_eq!(ops.status, StatusCode::OK);
    let held = ops.html.split("MINIMAX_API_KEY").nth(1).unwrap_or_default();
    assert!(held.trim_start_matches("</code></td><td>").starts_with("<span class=\"status running\">present"), "{}", ops.html);
    assert!(ops.html.contains("OPENAI_API_KEY</code></td><td><span class=\"status failed\">missing"), "{}", ops.html);
    assert!(ops.html.contains("claude-code") && ops.html.contains("2.1.332"), "runtimes with their verified versions: {}", ops.html);
    assert!(ops.html.contains("acme") && ops.html.contains("process"), "{}", ops.html);
    let other = api.org("other").await;
    api.secret(&other, "MINIMAX_API_KEY", "canary-console-other-key-19a3").await;
    api.workspace(&other, "gamma", "claude-code", "MiniMax-M2.7").await;
    let all = operator.get("/console/workspaces").await;
    assert!(all.html.contains(">gamma<") && all.html.contains("bold"), "{}", all.html);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_set_listed_by_name_and_deleted_after_a_question() {
    let api = server("console-secrets").await;
    let acme = api.org("acme").await;
    let other = api.org("other").await;
    let token = api.org_token(&acme).await;
    let mut browser = Browser::new(&api);
    browser.sign_in(&token).await;

    let page = browser.get(&format!("/console/orgs/{acme}/secrets")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("No org secret yet"), "{}", page.html);
    assert!(page.html.contains("type=\"password\" name=\"value\""), "the value is typed into a password field");
    let csrf = hidden(&page.html, "csrf");
    let path = format!("/console/orgs/{acme}/secrets");

    let forged = browser.post(&path, &[("csrf", "forged"), ("key", "MINIMAX_API_KEY"), ("value", CANARY)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let bad = browser.post(&path, &[("csrf", &csrf), ("key", "LD_PRELOAD"), ("value", CANARY)]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.html.contains("PROTECTED_ENV_KEY"), "{}", bad.html);
    let set = browser.post(&path, &[("csrf", &csrf), ("key", "MINIMAX_API_KEY"), ("value", CANARY)]).await;
    assert_eq!((set.status, set.location.as_deref()), (StatusCode::SEE_OTHER, Some(path.as_str())));
    let listed = browser.get(&path).await;
    assert!(listed.html.contains("MINIMAX_API_KEY"), "{}", listed.html);
    let secrets = api.get(&format!("/v1/orgs/{acme}/secrets"), ADMIN).await;
    assert_eq!(secrets.body["secrets"][0]["key"], "MINIMAX_API_KEY", "set through the console, seen through the API");

    // Another org's secrets are not found.
    assert_eq!(browser.get(&format!("/console/orgs/{other}/secrets")).await.status, StatusCode::NOT_FOUND);
    let theirs = browser.post(&format!("/console/orgs/{other}/secrets"), &[("csrf", &csrf), ("key", "X_KEY"), ("value", "x")]).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);

    let question = browser.get(&format!("{path}/MINIMAX_API_KEY/delete")).await;
    assert_eq!(question.status, StatusCode::OK);
    assert!(question.html.contains("Delete") && question.html.contains("Cancel"));
    let kept = api.get(&format!("/v1/orgs/{acme}/secrets"), ADMIN).await;
    assert_eq!(kept.body["secrets"].as_array().unwrap().len(), 1, "asking deletes nothing");
    let deleted = browser.post(&format!("{path}/MINIMAX_API_KEY/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    let gone = api.get(&format!("/v1/orgs/{acme}/secrets"), ADMIN).await;
    assert!(gone.body["secrets"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_s_own_secrets_are_set_on_its_page_and_override_the_org_s() {
    let api = server("console-workspace-secrets").await;
    let acme = api.org("acme").await;
    let other = api.org("other").await;
    api.secret(&acme, "MINIMAX_API_KEY", CANARY).await;
    let alpha = api.workspace(&acme, "alpha", "claude-code", "MiniMax-M2.7").await;
    let beta = api.workspace(&acme, "beta", "claude-code", "MiniMax-M2.7").await;
    api.secret(&other, "MINIMAX_API_KEY", "other-org-key").await;
    let theirs = api.workspace(&other, "theirs", "claude-code", "MiniMax-M2.7").await;
    let token = api.org_token(&acme).await;
    let mut browser = Browser::new(&api);
    browser.sign_in(&token).await;

    let page_path = format!("/console/orgs/{acme}/workspaces/{alpha}");
    let page = browser.get(&page_path).await;
    assert!(
        page.html.contains("the workspace has the org&#39;s secrets") || page.html.contains("the workspace has the org's secrets"),
        "{}",
        page.html
    );
    let csrf = hidden(&page.html, "csrf");
    let path = format!("{page_path}/secrets");

    let forged = browser.post(&path, &[("csrf", "forged"), ("key", "MINIMAX_API_KEY"), ("value", CANARY)]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let set = browser.post(&path, &[("csrf", &csrf), ("key", "MINIMAX_API_KEY"), ("value", &format!("{CANARY}-alpha"))]).await;
    assert_eq!((set.status, set.location.as_deref()), (StatusCode::SEE_OTHER, Some(page_path.as_str())), "{}", set.html);
    let page = browser.get(&page_path).await;
    assert!(page.html.contains(&format!("{path}/MINIMAX_API_KEY/delete")), "listed with a way to delete it: {}", page.html);
    assert!(page.html.contains("(console)"), "who set it: {}", page.html);
    // The plan now takes the workspace's own key over the org's.
    let plan = api.get(&format!("/v1/orgs/{acme}/workspaces/{alpha}/plan"), ADMIN).await;
    assert!(plan.body.to_string().contains("overridden"), "{}", plan.body);
    let listed = api.get(&format!("/v1/orgs/{acme}/workspaces/{alpha}/secrets"), ADMIN).await;
    assert_eq!(listed.body["secrets"][0]["key"], "MINIMAX_API_KEY");
    assert!(listed.body["secrets"][0]["updated_by"].as_str().unwrap().ends_with("(console)"), "{}", listed.body);
    let siblings = api.get(&format!("/v1/orgs/{acme}/workspaces/{beta}/secrets"), ADMIN).await;
    assert!(siblings.body["secrets"].as_array().unwrap().is_empty(), "another workspace keeps only the org's");

    // Another org's workspace is not found, to set or to delete.
    let foreign = format!("/console/orgs/{other}/workspaces/{theirs}/secrets");
    assert_eq!(browser.post(&foreign, &[("csrf", &csrf), ("key", "X_KEY"), ("value", "x")]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(browser.get(&format!("{foreign}/X_KEY/delete")).await.status, StatusCode::NOT_FOUND);
    let mixed = format!("/console/orgs/{acme}/workspaces/{theirs}/secrets");
    assert_eq!(browser.post(&mixed, &[("csrf", &csrf), ("key", "X_KEY"), ("value", "x")]).await.status, StatusCode::NOT_FOUND);
    assert!(api.get(&format!("/v1/orgs/{other}/workspaces/{theirs}/secrets"), ADMIN).await.body["secrets"].as_array().unwrap().is_empty());

    let question = browser.get(&format!("{path}/MINIMAX_API_KEY/delete")).await;
    assert_eq!(question.status, StatusCode::OK);
    assert!(question.html.contains("workspace alpha") && question.html.contains(&page_path), "{}", question.html);
    assert_eq!(browser.post(&format!("{path}/MINIMAX_API_KEY/delete"), &[("csrf", "forged")]).await.status, StatusCode::FORBIDDEN);
    let deleted = browser.post(&format!("{path}/MINIMAX_API_KEY/delete"), &[("csrf", &csrf)]).await;
    assert_eq!((deleted.status, deleted.location.as_deref()), (StatusCode::SEE_OTHER, Some(page_path.as_str())));
    let gone = api.get(&format!("/v1/orgs/{acme}/workspaces/{alpha}/secrets"), ADMIN).await;
    assert!(gone.body["secrets"].as_array().unwrap().is_empty());
    let org_kept = api.get(&format!("/v1/orgs/{acme}/secrets"), ADMIN).await;
    assert_eq!(org_kept.body["secrets"][0]["key"], "MINIMAX_API_KEY", "the org's secret of the same name stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_shows_tokens_and_cost_by_day_workspace_and_model_and_the_budgets() {
    let api = server("console-usage").await;
    let acme = api.org("acme").await;
    api.secret(&acme, "MINIMAX_API_KEY", CANARY).await;
    let alpha = api.workspace(&acme, "alpha", "claude-code", "MiniMax-M2.7").await;
    let record = |model: &str, tokens: i64, cost: Option<i64>, days_ago: i64| wsd_store::UsageRecord {
        at: wsd_store::now_ms() - days_ago * 86_400_000,
        org_id: acme.clone(),
        workspace_id: alpha.clone(),
        provider: "minimax".into(),
        model: model.into(),
        input_tokens: tokens,
        output_tokens: 7,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        status: 200,
        latency_ms: 42,
        request_id: "req".into(),
        routing: "byok".into(),
        cost_micros: cost,
        reservation: None,
    };
    let rows =
        [record("MiniMax-M2.7", 1000, Some(1_234_500), 0), record("MiniMax-M2.7", 500, Some(500_000), 2), record("in-house", 93, None, 1)];
    api.state.store.append_usage(&rows).await.unwrap();
    let budget = json!({"unit": "tokens", "period": "month", "limit": 10_000});
    assert_eq!(api.put(&format!("/v1/orgs/{acme}/budgets"), ADMIN, budget).await.status, StatusCode::OK);
    let mut browser = Browser::new(&api);
    browser.sign_in(&api.org_token(&acme).await).await;

    let page = browser.get(&format!("/console/orgs/{acme}/usage?days=7")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let html = &page.html;
    assert!(html.contains("3 metered requests, 1614 tokens"), "{html}");
    assert_eq!(html.matches("<rect ").count(), 7, "one bar a day of the window");
    assert!(html.contains(": 1007 tokens") && html.contains(": 100 tokens") && html.contains(": 507 tokens"), "{html}");
    assert!(html.contains("$1.7345"), "the priced requests' cost: {html}");
    assert!(html.contains("unknown (no price)"), "an unpriced model's cost is unknown, never 0: {html}");
    assert!(html.contains("alpha") && html.contains("in-house (minimax)"), "{html}");
    assert!(html.contains("the org, tokens per month") && html.contains("<meter"), "the budget and where it stands: {html}");
    assert!(html.contains("42 ms"), "the latest requests: {html}");

    let other = api.org("other").await;
    assert_eq!(browser.get(&format!("/console/orgs/{other}/usage")).await.status, StatusCode::NOT_FOUND);
}
