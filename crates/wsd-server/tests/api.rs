//! The HTTP API black-box, over real HTTP on loopback, on SQLite and PostgreSQL.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{ADMIN, Api};

const CANARY_OAUTH: &str = "canary-oauth-api-4b1e77";
const CANARY_MINIMAX: &str = "canary-minimax-api-90c3d2";
const CANARY_WS: &str = "canary-workspace-api-5e0f19";
const CANARY_PLATFORM: &str = "canary-platform-api-77aa01";

fn decision<'a>(plan: &'a Value, key: &str, origin: &str) -> &'a Value {
    plan["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["key"] == key && d["origin"] == origin)
        .unwrap_or_else(|| panic!("no decision for {key} ({origin}) in {plan}"))
}

/// Plans are served from a short-lived cache: every change made through the API shows in
/// the very next plan.
async fn a_plan_follows_every_change_at_once(api: &Api) {
    let org = api.org("acme").await;
    api.secret(&org, "MINIMAX_API_KEY", CANARY_MINIMAX).await;
    let ws = api.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let path = format!("/v1/orgs/{org}/workspaces/{ws}/plan");
    assert_eq!(api.get(&path, ADMIN).await.body["ok"], true);
    assert!(api.get(&path, ADMIN).await.body["env"].get("EXTRA_SETTING").is_none());

    api.put(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/EXTRA_SETTING"), ADMIN, json!({"value": "x"})).await;
    assert!(api.get(&path, ADMIN).await.body["env"].get("EXTRA_SETTING").is_some(), "a workspace secret set");
    api.delete(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/EXTRA_SETTING"), ADMIN).await;
    assert!(api.get(&path, ADMIN).await.body["env"].get("EXTRA_SETTING").is_none(), "a workspace secret deleted");
    api.secret(&org, "ORG_SETTING", "y").await;
    assert!(api.get(&path, ADMIN).await.body["env"].get("ORG_SETTING").is_some(), "an org secret set");
    api.delete(&format!("/v1/orgs/{org}/secrets/ORG_SETTING"), ADMIN).await;
    assert!(api.get(&path, ADMIN).await.body["env"].get("ORG_SETTING").is_none(), "an org secret deleted");
    api.secret(&org, "ANTHROPIC_API_KEY", "z").await;
    api.patch(&format!("/v1/orgs/{org}/workspaces/{ws}"), ADMIN, json!({"model": "claude-sonnet-4-6"})).await;
    assert_eq!(api.get(&path, ADMIN).await.body["provider"], "anthropic-api", "a model switched");
    api.delete(&format!("/v1/orgs/{org}/workspaces/{ws}"), ADMIN).await;
    assert_eq!(api.get(&path, ADMIN).await.status, StatusCode::NOT_FOUND, "a workspace deleted");
}
api_test!(a_plan_follows_every_change_at_once);

async fn seed_scenarios_end_to_end(api: &Api) {
    let org = api.org("acme").await;
    api.secret(&org, "CLAUDE_CODE_OAUTH_TOKEN", CANARY_OAUTH).await;
    api.secret(&org, "MINIMAX_API_KEY", CANARY_MINIMAX).await;

    let minimax = api.workspace(&org, "dev-b", "claude-code", "MiniMax-M2.7").await;
    let plan = api.get(&format!("/v1/orgs/{org}/workspaces/{minimax}/plan"), ADMIN).await;
    assert_eq!(plan.status, StatusCode::OK);
    assert_eq!(
        (plan.body["ok"].clone(), plan.body["provider"].clone(), plan.body["routing"].clone()),
        (json!(true), json!("minimax"), json!("byok"))
    );
    assert_eq!(decision(&plan.body, "CLAUDE_CODE_OAUTH_TOKEN", "org")["action"], "stripped");
    assert_eq!(plan.body["env"]["ANTHROPIC_AUTH_TOKEN"], json!({"origin": "projected", "from": "MINIMAX_API_KEY", "value": null}));
    assert!(plan.body["env"].get("CLAUDE_CODE_OAUTH_TOKEN").is_none());

    let opus = api.workspace(&org, "reno", "claude-code", "opus").await;
    let plan = api.get(&format!("/v1/orgs/{org}/workspaces/{opus}/plan"), ADMIN).await;
    assert_eq!(plan.body["provider"], "anthropic-oauth");
    assert_eq!(decision(&plan.body, "CLAUDE_CODE_OAUTH_TOKEN", "org")["action"], "kept");

    let billing = api.get(&format!("/v1/orgs/{org}/workspaces/{minimax}/llm-billing-mode"), ADMIN).await;
    assert_eq!((billing.body["mode"].clone(), billing.body["provider"].clone()), (json!("byok"), json!("minimax")));
    let platform = api.workspace(&org, "metered", "claude-code", "anthropic/claude-opus-4-7").await;
    let billing = api.get(&format!("/admin/workspaces/{platform}/llm-billing-mode"), ADMIN).await;
    assert_eq!((billing.status, billing.body["mode"].clone()), (StatusCode::OK, json!("platform_managed")));

    // A MiniMax workspace without a MiniMax key is refused at create and never stored.
    let bare = api.org("bare").await;
    api.secret(&bare, "CLAUDE_CODE_OAUTH_TOKEN", CANARY_OAUTH).await;
    let r = api
        .post(&format!("/v1/orgs/{bare}/workspaces"), ADMIN, json!({"name": "x", "runtime": "claude-code", "model": "MiniMax-M2.7"}))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["error"]["code"], "MISSING_BYOK_CREDENTIAL");
    assert_eq!(r.body["error"]["provider"], "minimax");
    assert_eq!(r.body["error"]["accepted_keys"], json!(["MINIMAX_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"]));
    assert_eq!(api.get(&format!("/v1/orgs/{bare}/workspaces"), ADMIN).await.body["workspaces"], json!([]));
}
api_test!(seed_scenarios_end_to_end);

async fn every_endpoint_succeeds_for_its_owner(api: &Api) {
    let org = api.org("acme").await;
    assert_eq!(api.get(&format!("/v1/orgs/{org}"), ADMIN).await.body["name"], "acme");
    assert_eq!(api.get("/v1/orgs", ADMIN).await.body["orgs"].as_array().unwrap().len(), 1);

    // Tokens: minted once, listed by prefix, usable on their org, revocable.
    let minted = api.post(&format!("/v1/orgs/{org}/tokens"), ADMIN, json!({"name": "ci"})).await;
    assert_eq!(minted.status, StatusCode::CREATED);
    let token = minted.body["secret"].as_str().unwrap().to_owned();
    let token_id = minted.body["token"]["id"].as_str().unwrap().to_owned();
    let listed = api.get(&format!("/v1/orgs/{org}/tokens"), &token).await;
    assert_eq!(listed.body["tokens"][0]["prefix"], token[..12]);
    assert!(!listed.body.to_string().contains(&token));
    assert_eq!(api.get("/v1/orgs", &token).await.body["orgs"].as_array().unwrap().len(), 1);

    // Secrets with the org token: written, listed by name, deleted.
    let r = api.put(&format!("/v1/orgs/{org}/secrets/MINIMAX_API_KEY"), &token, json!({"value": CANARY_MINIMAX})).await;
    assert_eq!((r.status, r.body["key"].clone(), r.body["key_version"].clone()), (StatusCode::OK, json!("MINIMAX_API_KEY"), json!(1)));
    api.put(&format!("/v1/orgs/{org}/secrets/DATABASE_URL"), &token, json!({"value": "postgres://x"})).await;
    let listed = api.get(&format!("/v1/orgs/{org}/secrets"), &token).await;
    let keys: Vec<&str> = listed.body["secrets"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["DATABASE_URL", "MINIMAX_API_KEY"]);
    assert_eq!(api.delete(&format!("/v1/orgs/{org}/secrets/DATABASE_URL"), &token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&format!("/v1/orgs/{org}/secrets/DATABASE_URL"), &token).await.status, StatusCode::NOT_FOUND);

    // Workspaces.
    let r = api
        .post(&format!("/v1/orgs/{org}/workspaces"), &token, json!({"name": "dev", "runtime": "claude-code", "model": "MiniMax-M2.7"}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!((r.body["model"].clone(), r.body["status"].clone()), (json!("MiniMax-M2.7"), json!("created")));
    let ws = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(api.get(&format!("/v1/orgs/{org}/workspaces/{ws}"), &token).await.body["name"], "dev");
    assert_eq!(api.get(&format!("/v1/orgs/{org}/workspaces"), &token).await.body["workspaces"].as_array().unwrap().len(), 1);
    let r = api.put(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/SENTRY_DSN"), &token, json!({"value": CANARY_WS})).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(api.get(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets"), &token).await.body["secrets"][0]["key"], "SENTRY_DSN");
    let plan = api.get(&format!("/v1/orgs/{org}/workspaces/{ws}/plan"), &token).await;
    assert_eq!(plan.body["env"]["SENTRY_DSN"]["origin"], "workspace");
    assert_eq!(plan.body["delivery"]["delivery"], "direct");

    // Credential delivery: the org's key stays in wsd; the plan changes at once.
    let delivery = format!("/v1/orgs/{org}/credential-delivery");
    let r = api.put(&delivery, &token, json!({"credential_delivery": "proxy"})).await;
    assert_eq!((r.status, r.body["credential_delivery"].clone()), (StatusCode::OK, json!("proxy")));
    let plan = api.get(&format!("/v1/orgs/{org}/workspaces/{ws}/plan"), &token).await;
    assert_eq!(plan.body["delivery"]["proxied"]["key"], "MINIMAX_API_KEY", "{}", plan.body);
    assert_eq!(plan.body["env"]["ANTHROPIC_AUTH_TOKEN"]["from"], "WSD_LLM_USAGE_TOKEN");
    let r = api.put(&delivery, &token, json!({"credential_delivery": "default"})).await;
    assert_eq!((r.status, r.body["credential_delivery"].clone()), (StatusCode::OK, Value::Null));

    // Switching the model is validated like create.
    let r = api.patch(&format!("/v1/orgs/{org}/workspaces/{ws}"), &token, json!({"model": "opus"})).await;
    assert_eq!((r.status, r.body["error"]["code"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("MISSING_BYOK_CREDENTIAL")));
    assert_eq!(api.get(&format!("/v1/orgs/{org}/workspaces/{ws}"), &token).await.body["model"], "MiniMax-M2.7");
    let r = api.patch(&format!("/v1/orgs/{org}/workspaces/{ws}"), &token, json!({"model": "MiniMax-M3"})).await;
    assert_eq!((r.status, r.body["model"].clone()), (StatusCode::OK, json!("MiniMax-M3")));

    assert_eq!(api.delete(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/SENTRY_DSN"), &token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&format!("/v1/orgs/{org}/workspaces/{ws}"), &token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/v1/orgs/{org}/workspaces/{ws}"), &token).await.status, StatusCode::NOT_FOUND);

    // Platform secrets are the operator's.
    assert_eq!(api.put("/v1/platform/secrets/ANTHROPIC_API_KEY", ADMIN, json!({"value": CANARY_PLATFORM})).await.status, StatusCode::OK);
    assert_eq!(api.get("/v1/platform/secrets", ADMIN).await.body["secrets"][0]["key"], "ANTHROPIC_API_KEY");
    assert_eq!(api.put("/v1/platform/secrets/ANTHROPIC_API_KEY", &token, json!({"value": "x"})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.delete("/v1/platform/secrets/ANTHROPIC_API_KEY", ADMIN).await.status, StatusCode::NO_CONTENT);

    // The audit log names keys and actions, never values.
    let audit = api.get(&format!("/v1/orgs/{org}/audit?limit=100"), &token).await;
    let actions: Vec<&str> = audit.body["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.starts_with(&["org.create", "token.create", "secret.put", "secret.put", "secret.delete", "workspace.create"]),
        "{actions:?}"
    );
    assert!(actions.contains(&"workspace.delete"), "{actions:?}");
    let first = audit.body["events"][0]["seq"].as_i64().unwrap();
    let page = api.get(&format!("/v1/orgs/{org}/audit?after={first}&limit=1"), &token).await;
    assert_eq!(page.body["events"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["events"][0]["action"], "token.create");

    assert!(api.get("/v1/registry/providers", &token).await.body["providers"].as_array().unwrap().len() >= 14);
    assert!(api.get("/v1/registry/runtimes", &token).await.body["runtimes"].as_array().unwrap().len() >= 4);

    // Usage over any range of 64-bit times answers, the defaults saturating at the ends.
    for range in
        [format!("to={}", i64::MIN), format!("from={}&to={}", i64::MIN, i64::MAX), format!("from={}&to={}", i64::MAX - 1, i64::MAX)]
    {
        let r = api.get(&format!("/v1/orgs/{org}/usage?{range}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{range}: {}", r.body);
        assert!(r.body["usage"].is_array() && r.body["days"].is_array(), "{range}: {}", r.body);
    }

    assert_eq!(api.delete(&format!("/v1/orgs/{org}/tokens/{token_id}"), ADMIN).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/v1/orgs/{org}"), &token).await.status, StatusCode::UNAUTHORIZED);
}
api_test!(every_endpoint_succeeds_for_its_owner);

/// A request that is wrong, and the status and code it must get.
type Mistake<'a> = (Method, String, Option<&'a str>, Option<String>, StatusCode, &'a str);

async fn client_mistakes_get_a_stable_4xx_and_store_nothing(api: &Api) {
    let org = api.org("acme").await;
    api.secret(&org, "MINIMAX_API_KEY", CANARY_MINIMAX).await;
    let ws = api.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    let workspaces = format!("/v1/orgs/{org}/workspaces");
    let big = "x".repeat(70 * 1024);
    let cases: Vec<Mistake> = vec![
        (Method::GET, format!("/v1/orgs/{org}"), None, None, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        (Method::GET, format!("/v1/orgs/{org}"), Some("wsd_wrong"), None, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        (Method::POST, workspaces.clone(), Some(ADMIN), Some("{not json".into()), StatusCode::BAD_REQUEST, "INVALID_JSON"),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "a", "runtime": "claude-code", "model": "opus", "extra": 1}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "a", "runtime": "claude-code"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/credential-delivery"),
            Some(ADMIN),
            Some(json!({"credential_delivery": "sometimes"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(format!("{{\"name\": \"{big}\"}}")),
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "a", "runtime": "langgraph", "model": "opus"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNKNOWN_RUNTIME",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "a", "runtime": "claude-code", "model": ""}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "MODEL_REQUIRED",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "a", "runtime": "claude-code", "model": "gpt-5.5"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNREGISTERED_MODEL_FOR_RUNTIME",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "a", "runtime": "claude-code", "model": "anthropic/claude-opus-4-7\n"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_MODEL",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "", "runtime": "claude-code", "model": "opus"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "dev\u{202E}txt.exe", "runtime": "claude-code", "model": "opus"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (
            Method::POST,
            "/v1/orgs".to_owned(),
            Some(ADMIN),
            Some(json!({"name": "ac\u{200B}me"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_NAME",
        ),
        (Method::GET, format!("/v1/orgs/{org}/workspaces/%FF%FE"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_PATH"),
        (
            Method::POST,
            workspaces.clone(),
            Some(ADMIN),
            Some(json!({"name": "dev", "runtime": "claude-code", "model": "MiniMax-M2.7"}).to_string()),
            StatusCode::CONFLICT,
            "CONFLICT",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/bad-key"),
            Some(ADMIN),
            Some(json!({"value": "v"}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_KEY",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/WSD_ADMIN_TOKEN"),
            Some(ADMIN),
            Some(json!({"value": "v"}).to_string()),
            StatusCode::BAD_REQUEST,
            "RESERVED_KEY",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/EMPTY_ONE"),
            Some(ADMIN),
            Some(json!({"value": ""}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_VALUE",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/HUGE_ONE"),
            Some(ADMIN),
            Some(json!({"value": "y".repeat(40 * 1024)}).to_string()),
            StatusCode::BAD_REQUEST,
            "VALUE_TOO_LARGE",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/GITHUB_TOKEN"),
            Some(ADMIN),
            Some(json!({"value": "v"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "FORBIDDEN_TENANT_ENV_KEY",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/OPS_KEY"),
            Some(ADMIN),
            Some(json!({"value": "v"}).to_string()),
            StatusCode::UNPROCESSABLE_ENTITY,
            "FORBIDDEN_TENANT_ENV_KEY",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/NOT_JSON"),
            Some(ADMIN),
            None,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/secrets/NUMBER"),
            Some(ADMIN),
            Some(json!({"value": 5}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
        ),
        (Method::GET, format!("/v1/orgs/{org}/workspaces/nope"), Some(ADMIN), None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (Method::GET, "/v1/orgs/nope".into(), Some(ADMIN), None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/workspaces/nope/secrets/K"),
            Some(ADMIN),
            Some(json!({"value": "v"}).to_string()),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (Method::DELETE, format!("/v1/orgs/{org}/tokens/nope"), Some(ADMIN), None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (Method::GET, "/v1/nowhere".into(), Some(ADMIN), None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (Method::DELETE, format!("/v1/orgs/{org}"), Some(ADMIN), None, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        (Method::PATCH, workspaces.clone(), Some(ADMIN), Some("{}".into()), StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        (Method::GET, format!("/v1/orgs/{org}/audit?limit=5000"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        (Method::GET, format!("/v1/orgs/{org}/audit?limit=abc"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        (Method::GET, format!("/v1/orgs/{org}/usage/requests?limit=0"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        (Method::GET, format!("/v1/orgs/{org}/usage/requests?limit=1001"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        (Method::GET, format!("/v1/orgs/{org}/usage/requests?since=1"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        (Method::GET, "/v1/orgs/nope/usage/requests".into(), Some(ADMIN), None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (Method::GET, format!("/v1/orgs/{org}/usage?from=10&to=5"), Some(ADMIN), None, StatusCode::BAD_REQUEST, "INVALID_QUERY"),
        (Method::DELETE, format!("/v1/orgs/{org}/budgets/bud_nope"), Some(ADMIN), None, StatusCode::NOT_FOUND, "NOT_FOUND"),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/budgets"),
            Some(ADMIN),
            Some(json!({"unit": "tokens", "period": "day", "limit": -1}).to_string()),
            StatusCode::BAD_REQUEST,
            "INVALID_BUDGET",
        ),
        (
            Method::PUT,
            format!("/v1/orgs/{org}/budgets"),
            Some(ADMIN),
            Some(json!({"workspace": "ws_nope", "unit": "tokens", "period": "day", "limit": 1}).to_string()),
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
        (Method::POST, "/v1/orgs".into(), Some(ADMIN), Some(json!({"name": "acme"}).to_string()), StatusCode::CONFLICT, "CONFLICT"),
    ];
    for (method, path, token, body, status, code) in cases {
        let r = api.request(method.clone(), &path, token, body.as_deref()).await;
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (status, Some(code)), "{method} {path}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Nothing was stored by any of them.
    let secrets = api.get(&format!("/v1/orgs/{org}/secrets"), ADMIN).await;
    assert_eq!(secrets.body["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(api.get(&workspaces, ADMIN).await.body["workspaces"].as_array().unwrap().len(), 1);
    assert_eq!(api.get(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets"), ADMIN).await.body["secrets"], json!([]));
    // A presented token that fails is audited (a request without one is not a token use).
    let store = &api.state.store;
    assert_eq!(failure_events(store).await.len(), 1);
    // In aggregate: two hundred more failures, with long paths, add no audit event (the next
    // window's event will carry their count) and no metric series beyond their reason.
    let long = format!("/v1/orgs/{}", "x".repeat(16 * 1024));
    for _ in 0..200 {
        assert_eq!(api.request(Method::GET, &long, Some("wsd_bogus"), None).await.status, StatusCode::UNAUTHORIZED);
    }
    let events = failure_events(store).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].details.to_string().len() < 200, "{}", events[0].details);
    let metrics = api.get("/metrics", ADMIN).await;
    let text = metrics.body.as_str().map(str::to_owned).unwrap_or_else(|| metrics.body.to_string());
    assert!(text.contains("wsd_auth_failures_total{reason=\"unknown_or_revoked\"} 201"), "{text}");
}
api_test!(client_mistakes_get_a_stable_4xx_and_store_nothing);

async fn failure_events(store: &wsd_store::Store) -> Vec<wsd_store::AuditEvent> {
    store.list_audit(None, 0, 1000).await.unwrap().into_iter().filter(|e| e.action == "auth.failures").collect()
}

async fn an_org_token_sees_nothing_of_another_org(api: &Api) {
    let a = api.org("a").await;
    let b = api.org("b").await;
    api.secret(&b, "MINIMAX_API_KEY", CANARY_MINIMAX).await;
    let b_ws = api.workspace(&b, "b-dev", "claude-code", "MiniMax-M2.7").await;
    let b_token =
        api.post(&format!("/v1/orgs/{b}/tokens"), ADMIN, json!({"name": "b"})).await.body["token"]["id"].as_str().unwrap().to_owned();
    let a_token = api.post(&format!("/v1/orgs/{a}/tokens"), ADMIN, json!({"name": "a"})).await.body["secret"].as_str().unwrap().to_owned();
    let before = api.state.store.list_audit(Some(&b), 0, 1000).await.unwrap().len();

    let value = Some(json!({"value": "x"}).to_string());
    let matrix: Vec<(Method, String, Option<String>)> = vec![
        (Method::GET, format!("/v1/orgs/{b}"), None),
        (Method::POST, format!("/v1/orgs/{b}/tokens"), Some(json!({"name": "x"}).to_string())),
        (Method::GET, format!("/v1/orgs/{b}/tokens"), None),
        (Method::DELETE, format!("/v1/orgs/{b}/tokens/{b_token}"), None),
        (Method::GET, format!("/v1/orgs/{b}/secrets"), None),
        (Method::PUT, format!("/v1/orgs/{b}/secrets/MINIMAX_API_KEY"), value.clone()),
        (Method::DELETE, format!("/v1/orgs/{b}/secrets/MINIMAX_API_KEY"), None),
        (
            Method::POST,
            format!("/v1/orgs/{b}/workspaces"),
            Some(json!({"name": "x", "runtime": "claude-code", "model": "MiniMax-M2.7"}).to_string()),
        ),
        (Method::GET, format!("/v1/orgs/{b}/workspaces"), None),
        (Method::GET, format!("/v1/orgs/{b}/workspaces/{b_ws}"), None),
        (Method::PATCH, format!("/v1/orgs/{b}/workspaces/{b_ws}"), Some(json!({"model": "MiniMax-M3"}).to_string())),
        (Method::DELETE, format!("/v1/orgs/{b}/workspaces/{b_ws}"), None),
        (Method::GET, format!("/v1/orgs/{b}/workspaces/{b_ws}/secrets"), None),
        (Method::PUT, format!("/v1/orgs/{b}/workspaces/{b_ws}/secrets/K"), value.clone()),
        (Method::DELETE, format!("/v1/orgs/{b}/workspaces/{b_ws}/secrets/K"), None),
        (Method::GET, format!("/v1/orgs/{b}/workspaces/{b_ws}/plan"), None),
        (Method::GET, format!("/v1/orgs/{b}/workspaces/{b_ws}/llm-billing-mode"), None),
        (Method::GET, format!("/v1/orgs/{b}/audit"), None),
        (Method::GET, format!("/v1/orgs/{b}/usage"), None),
        (Method::GET, format!("/v1/orgs/{b}/usage/requests"), None),
        (Method::GET, format!("/v1/orgs/{b}/budgets"), None),
        (Method::PUT, format!("/v1/orgs/{b}/budgets"), Some(json!({"unit": "tokens", "period": "day", "limit": 1}).to_string())),
        (Method::DELETE, format!("/v1/orgs/{b}/budgets/bud_x"), None),
        (Method::GET, format!("/v1/orgs/{b}/rate-limits"), None),
        (Method::PUT, format!("/v1/orgs/{b}/rate-limits"), Some(json!({"requests_per_minute": 1, "tokens_per_minute": 1}).to_string())),
        (Method::DELETE, format!("/v1/orgs/{b}/rate-limits"), None),
        (Method::PUT, format!("/v1/orgs/{b}/credential-delivery"), Some(json!({"credential_delivery": "proxy"}).to_string())),
        // Org A's path with org B's workspace id: not found either.
        (Method::GET, format!("/v1/orgs/{a}/workspaces/{b_ws}"), None),
        (Method::GET, format!("/v1/orgs/{a}/workspaces/{b_ws}/plan"), None),
        (Method::PUT, format!("/v1/orgs/{a}/workspaces/{b_ws}/secrets/K"), value.clone()),
        (Method::DELETE, format!("/v1/orgs/{a}/workspaces/{b_ws}"), None),
    ];
    for (method, path, body) in matrix {
        let r = api.request(method.clone(), &path, Some(&a_token), body.as_deref()).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.body);
    }
    assert_eq!(api.get(&format!("/admin/workspaces/{b_ws}/llm-billing-mode"), &a_token).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.post("/v1/orgs", &a_token, json!({"name": "c"})).await.status, StatusCode::FORBIDDEN);
    let orgs = api.get("/v1/orgs", &a_token).await;
    assert_eq!(orgs.body["orgs"].as_array().unwrap().len(), 1);

    // Nothing of org B changed.
    assert_eq!(api.state.store.list_audit(Some(&b), 0, 1000).await.unwrap().len(), before);
    assert_eq!(api.get(&format!("/v1/orgs/{b}/workspaces/{b_ws}"), ADMIN).await.body["model"], "MiniMax-M2.7");
    assert_eq!(api.get(&format!("/v1/orgs/{b}/secrets"), ADMIN).await.body["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(api.get(&format!("/v1/orgs/{b}/tokens"), ADMIN).await.body["tokens"][0]["revoked_at"], Value::Null);
}
api_test!(an_org_token_sees_nothing_of_another_org);

async fn secret_values_never_leave_the_vault(api: &Api) {
    let org = api.org("acme").await;
    api.secret(&org, "CLAUDE_CODE_OAUTH_TOKEN", CANARY_OAUTH).await;
    api.secret(&org, "MINIMAX_API_KEY", CANARY_MINIMAX).await;
    let ws = api.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    api.put(&format!("/v1/orgs/{org}/workspaces/{ws}/secrets/ANTHROPIC_AUTH_TOKEN"), ADMIN, json!({"value": CANARY_WS})).await;
    api.put("/v1/platform/secrets/OPENAI_API_KEY", ADMIN, json!({"value": CANARY_PLATFORM})).await;
    // Error paths that carry a value in the request.
    api.put(&format!("/v1/orgs/{org}/secrets/GITHUB_TOKEN"), ADMIN, json!({"value": CANARY_OAUTH})).await;
    api.put(&format!("/v1/orgs/{org}/secrets/bad-key"), ADMIN, json!({"value": CANARY_OAUTH})).await;
    api.put(&format!("/v1/orgs/{org}/secrets/K"), ADMIN, json!({"value": CANARY_OAUTH, "extra": CANARY_OAUTH})).await;
    api.request(Method::PUT, &format!("/v1/orgs/{org}/secrets/K"), Some(ADMIN), Some(&format!("{{\"value\": \"{CANARY_OAUTH}"))).await;
    api.request(Method::GET, "/v1/orgs", Some(CANARY_OAUTH), None).await;
    for path in [
        format!("/v1/orgs/{org}"),
        format!("/v1/orgs/{org}/secrets"),
        format!("/v1/orgs/{org}/workspaces"),
        format!("/v1/orgs/{org}/workspaces/{ws}"),
        format!("/v1/orgs/{org}/workspaces/{ws}/secrets"),
        format!("/v1/orgs/{org}/workspaces/{ws}/plan"),
        format!("/v1/orgs/{org}/workspaces/{ws}/llm-billing-mode"),
        format!("/admin/workspaces/{ws}/llm-billing-mode"),
        format!("/v1/orgs/{org}/audit?limit=1000"),
        "/v1/platform/secrets".to_owned(),
    ] {
        let r = api.get(&path, ADMIN).await;
        assert!(r.status.is_success() || r.status == StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", r.body);
    }
    let seen = api.seen.lock().unwrap().clone();
    let audit = serde_json::to_string(&api.state.store.list_audit(None, 0, 10_000).await.unwrap()).unwrap();
    let log = String::from_utf8_lossy(&support::log().lock().unwrap()).to_string();
    for canary in [CANARY_OAUTH, CANARY_MINIMAX, CANARY_WS, CANARY_PLATFORM] {
        assert!(!seen.contains(canary), "{canary} in a response");
        assert!(!audit.contains(canary), "{canary} in the audit log");
        assert!(!log.contains(canary), "{canary} in the server log");
    }
    assert!(seen.contains("MINIMAX_API_KEY"), "responses name keys");
}
api_test!(secret_values_never_leave_the_vault);

async fn metrics_count_requests_by_route_and_plans_by_outcome(api: &Api) {
    let org = api.org("acme").await;
    api.secret(&org, "MINIMAX_API_KEY", CANARY_MINIMAX).await;
    let ws = api.workspace(&org, "dev", "claude-code", "MiniMax-M2.7").await;
    api.get(&format!("/v1/orgs/{org}/workspaces/{ws}/plan"), ADMIN).await;
    api.post(&format!("/v1/orgs/{org}/workspaces"), ADMIN, json!({"name": "x", "runtime": "claude-code", "model": "opus"})).await;
    // Made-up methods share one label.
    for method in ["FOO", "BAR", "BAZ"] {
        api.request(Method::from_bytes(method.as_bytes()).unwrap(), "/v1/orgs", Some(ADMIN), None).await;
    }
    let text = api.client.get(format!("{}/metrics", api.base)).send().await.unwrap().text().await.unwrap();
    for method in ["FOO", "BAR", "BAZ"] {
        assert!(!text.contains(method), "{method} became a label");
    }
    assert!(text.contains("wsd_http_requests_total{method=\"other\",route=\"/v1/orgs\",status=\"405\"} 3"), "{text}");
    for line in [
        "wsd_http_requests_total{method=\"GET\",route=\"/v1/orgs/{org}/workspaces/{id}/plan\",status=\"200\"} 1",
        "wsd_http_requests_total{method=\"POST\",route=\"/v1/orgs/{org}/workspaces\",status=\"422\"} 1",
        "wsd_plan_outcomes_total{outcome=\"ok\"} 2",
        "wsd_plan_outcomes_total{outcome=\"MISSING_BYOK_CREDENTIAL\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(!text.contains(&org), "ids are never labels");
    assert!(text.contains("wsd_http_request_duration_seconds_bucket{route=\"/v1/orgs/{org}/workspaces/{id}/plan\",le=\"+Inf\"} 1"));
}
api_test!(metrics_count_requests_by_route_and_plans_by_outcome);

async fn the_openapi_document_describes_exactly_the_routes_that_answer(api: &Api) {
    let doc = api.request(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let paths = doc.body["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            operations += 1;
            let concrete = path.replace("{org}", "o").replace("{id}", "i").replace("{key}", "K");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, Method::POST | Method::PUT | Method::PATCH).then_some("{}");
            let r = api.request(method.clone(), &concrete, Some(ADMIN), body).await;
            assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is documented but not routed");
            assert_ne!(r.body["error"]["message"], "endpoint not found", "{method} {path} is documented but not routed");
        }
    }
    // Every routed operation is documented: the API router has 45, one of them this
    // document (the metering proxy's pass-through routes are not part of the API).
    assert_eq!(operations, 45, "{:?}", paths.keys().collect::<Vec<_>>());
    // Every success with a body documents the body, and every schema named is in the document.
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2') && status != "204" && path != "/metrics" {
                    let schema = &response["content"]["application/json"]["schema"];
                    assert!(schema.is_object(), "{method} {path} {status} documents no body: {response}");
                }
            }
        }
    }
    // docs/api.md lists every operation.
    let guide = include_str!("../../../docs/api.md");
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let operation = format!("`{} {path}`", method.to_uppercase());
            assert!(guide.contains(&operation), "docs/api.md does not list {operation}");
        }
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    let text = doc.body.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(schemas.contains_key(name), "schema {name} is named but not described");
    }
    for name in ["Workspace", "WorkspaceView", "SecretList", "MintedToken", "BillingMode", "UsageReport", "ErrorBody"] {
        assert!(schemas.contains_key(name), "{name} is not described");
    }
}
api_test!(the_openapi_document_describes_exactly_the_routes_that_answer);

async fn admin_tokens_are_minted_listed_and_revoked_but_never_the_last(api: &Api) {
    let r = api.post("/v1/admin/tokens", ADMIN, json!({"name": "ops"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let (id, secret) = (r.body["token"]["id"].as_str().unwrap().to_owned(), r.body["secret"].as_str().unwrap().to_owned());
    assert_eq!(api.get("/v1/orgs", &secret).await.status, StatusCode::OK, "the new admin token works");
    let listed = api.get("/v1/admin/tokens", &secret).await;
    assert!(listed.body["tokens"].as_array().unwrap().iter().all(|t| t["kind"] == "admin" && t.get("secret").is_none()), "{}", listed.body);
    assert_eq!(listed.body["tokens"].as_array().unwrap().len(), 2);
    // An org token may do none of it.
    let org = api.org("acme").await;
    let org_token =
        api.post(&format!("/v1/orgs/{org}/tokens"), ADMIN, json!({"name": "t"})).await.body["secret"].as_str().unwrap().to_owned();
    assert_eq!(api.get("/v1/admin/tokens", &org_token).await.status, StatusCode::FORBIDDEN);
    assert_eq!(api.post("/v1/admin/tokens", &org_token, json!({"name": "x"})).await.status, StatusCode::FORBIDDEN);
    // An org token's id is not an admin token's.
    let org_token_id = api.get(&format!("/v1/orgs/{org}/tokens"), ADMIN).await.body["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.delete(&format!("/v1/admin/tokens/{org_token_id}"), ADMIN).await.status, StatusCode::NOT_FOUND);
    // Revoked: refused at once. The last one cannot be revoked.
    assert_eq!(api.delete(&format!("/v1/admin/tokens/{id}"), ADMIN).await.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get("/v1/orgs", &secret).await.status, StatusCode::UNAUTHORIZED);
    let remaining = api.get("/v1/admin/tokens", ADMIN).await.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api.delete(&format!("/v1/admin/tokens/{remaining}"), ADMIN).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("LAST_ADMIN_TOKEN")));
    assert_eq!(api.get("/v1/orgs", ADMIN).await.status, StatusCode::OK);
}
api_test!(admin_tokens_are_minted_listed_and_revoked_but_never_the_last);
