//! The API client commands against a real `wsd serve`: the seed scenario from the command
//! line, tables and `--json`, the server's errors shown with their codes, values read from
//! standard input and never printed.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use support::{Server, fresh_dir};

const CANARY: &str = "canary-cli-client-6d2a90";

struct Cli<'a> {
    server: &'a Server,
    token: String,
}

impl Cli<'_> {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsd"))
            .args(args)
            .env("WSD_URL", format!("http://{}", self.server.address))
            .env("WSD_TOKEN", &self.token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!all.contains(CANARY), "a secret value was printed: {all}");
        out
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all, None);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_seed_scenario_from_the_command_line() {
    let server = Server::start(&fresh_dir("cli-client"));
    let cli = Cli { server: &server, token: server.admin_token() };

    let org = cli.json(&["org", "create", "acme"])["id"].as_str().unwrap().to_owned();
    let out = cli.run(&["org", "list"], None);
    assert!(stdout(&out).contains("acme"), "{}", stdout(&out));
    assert_eq!(cli.json(&["org", "delivery", &org, "proxy"])["credential_delivery"], "proxy");
    assert!(stdout(&cli.run(&["org", "show", &org], None)).contains("proxy"));
    assert_eq!(cli.json(&["org", "delivery", &org, "default"])["credential_delivery"], serde_json::Value::Null);
    assert_eq!(cli.run(&["org", "delivery", &org, "sometimes"], None).status.code(), Some(2));

    for key in ["CLAUDE_CODE_OAUTH_TOKEN", "MINIMAX_API_KEY"] {
        let out = cli.run(&["secret", "set", "--org", &org, key], Some(&format!("{CANARY}\n")));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(stdout(&out), format!("set {key} (key version 1)\n"));
    }
    let out = cli.run(&["secret", "list", "--org", &org], None);
    assert!(stdout(&out).contains("CLAUDE_CODE_OAUTH_TOKEN") && stdout(&out).contains("MINIMAX_API_KEY"));

    let ws = cli.json(&["ws", "create", "--org", &org, "--name", "dev-b", "--runtime", "claude-code", "--model", "MiniMax-M2.7"]);
    let ws = ws["id"].as_str().unwrap().to_owned();
    let out = cli.run(&["ws", "plan", "--org", &org, &ws], None);
    assert!(out.status.success());
    let plan = stdout(&out);
    assert!(plan.contains("provider: minimax") && plan.contains("CLAUDE_CODE_OAUTH_TOKEN") && plan.contains("stripped"), "{plan}");
    let json_plan = cli.json(&["ws", "plan", "--org", &org, &ws]);
    assert_eq!(json_plan["env"]["ANTHROPIC_AUTH_TOKEN"]["from"], "MINIMAX_API_KEY");
    assert_eq!(cli.json(&["ws", "billing-mode", "--org", &org, &ws])["mode"], "byok");

    // The server's refusal, with its code, and exit status 3.
    let bare = cli.json(&["org", "create", "bare"])["id"].as_str().unwrap().to_owned();
    let out = cli.run(&["ws", "create", "--org", &bare, "--name", "x", "--runtime", "claude-code", "--model", "MiniMax-M2.7"], None);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: MISSING_BYOK_CREDENTIAL (HTTP 422): provider `minimax` needs one of"));
    // A client mistake: exit 1 with the code.
    let out = cli.run(&["secret", "set", "--org", &org, "bad-key"], Some("v"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_KEY"));
    // An empty value never reaches the server.
    let out = cli.run(&["secret", "set", "--org", &org, "EMPTY"], Some("\n"));
    assert_eq!(out.status.code(), Some(2));

    // An org token works on its org only.
    let minted = cli.json(&["token", "create", "--org", &org, "ci"]);
    let org_cli = Cli { server: &server, token: minted["secret"].as_str().unwrap().to_owned() };
    assert_eq!(org_cli.json(&["ws", "list", "--org", &org])["workspaces"].as_array().unwrap().len(), 1);
    let out = org_cli.run(&["ws", "list", "--org", &bare], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT_FOUND (HTTP 404)"));

    let out = cli.run(&["ws", "set-model", "--org", &org, &ws, "MiniMax-M3"], None);
    assert!(out.status.success());
    let out = cli.run(&["audit", "list", "--org", &org], None);
    assert!(stdout(&out).contains("workspace.model"), "{}", stdout(&out));
    let out = cli.run(&["ws", "delete", "--org", &org, &ws], None);
    assert_eq!(stdout(&out), format!("deleted workspace {ws}\n"));
    let out = cli.run(&["token", "revoke", "--org", &org, minted["token"]["id"].as_str().unwrap()], None);
    assert!(out.status.success());
    let out = org_cli.run(&["org", "show", &org], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"));

    // Admin tokens: minted, listed, revoked; the scope is never guessed.
    let out = cli.run(&["token", "create", "ops"], None);
    assert_eq!(out.status.code(), Some(2), "--org or --admin is required");
    let admin = cli.json(&["token", "create", "--admin", "ops"]);
    let admin_cli = Cli { server: &server, token: admin["secret"].as_str().unwrap().to_owned() };
    assert!(admin_cli.run(&["org", "list"], None).status.success());
    let listed = stdout(&cli.run(&["token", "list", "--admin"], None));
    assert!(listed.contains("ops") && !listed.contains(admin["secret"].as_str().unwrap()), "{listed}");
    assert!(cli.run(&["token", "revoke", "--admin", admin["token"]["id"].as_str().unwrap()], None).status.success());
    assert!(String::from_utf8_lossy(&admin_cli.run(&["org", "list"], None).stderr).contains("UNAUTHENTICATED"));
    server.stop();
}

#[test]
fn without_a_token_or_a_server_the_client_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsd")).args(["org", "list"]).env_remove("WSD_TOKEN").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set WSD_TOKEN"));
    let out =
        Command::new(env!("CARGO_BIN_EXE_wsd")).args(["org", "list", "--url", "http://127.0.0.1:9", "--token", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach wsd at http://127.0.0.1:9"));
}

#[test]
fn workspaces_run_stop_and_show_their_logs_from_the_command_line() {
    let config = "[backends.process.commands]\nclaude-code = [\"sh\", \"-c\", \"echo agent started; exec sleep 30\"]\n";
    let server = Server::start_with_config(&fresh_dir("cli-lifecycle"), Some(config));
    let cli = Cli { server: &server, token: server.admin_token() };
    let org = cli.json(&["org", "create", "acme"])["id"].as_str().unwrap().to_owned();
    let out = cli.run(&["secret", "set", "--org", &org, "MINIMAX_API_KEY"], Some(CANARY));
    assert!(out.status.success());
    let ws = cli.json(&["ws", "create", "--org", &org, "--name", "dev", "--runtime", "claude-code", "--model", "MiniMax-M2.7"]);
    let ws = ws["id"].as_str().unwrap().to_owned();

    let running = cli.json(&["ws", "provision", "--org", &org, &ws]);
    assert_eq!(running["status"], "running");
    let mut logs = String::new();
    for _ in 0..100 {
        logs = stdout(&cli.run(&["ws", "logs", "--org", &org, &ws, "--tail", "5"], None));
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(logs, "agent started\n");
    let restarted = cli.json(&["ws", "restart", "--org", &org, &ws]);
    assert_ne!(restarted["instance_id"], running["instance_id"]);
    let stopped = cli.json(&["ws", "stop", "--org", &org, &ws]);
    assert_eq!(stopped["status"], "stopped");
    let pid = restarted["instance_id"].as_str().unwrap().split(':').nth(1).unwrap().to_owned();
    assert!(std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true), "the agent still runs");
    server.stop();
}

#[test]
fn workspaces_keep_running_across_a_restart_of_wsd_and_stay_manageable() {
    // An agent that keeps writing output: it must not die when wsd goes away.
    let config = "[backends.process.commands]\nclaude-code = [\"sh\", \"-c\", \"while true; do echo tick; sleep 0.05; done\"]\n";
    let data = fresh_dir("cli-wsd-restart");
    let server = Server::start_with_config(&data, Some(config));
    let token = server.admin_token();
    let cli = Cli { server: &server, token: token.clone() };
    let org = cli.json(&["org", "create", "acme"])["id"].as_str().unwrap().to_owned();
    assert!(cli.run(&["secret", "set", "--org", &org, "MINIMAX_API_KEY"], Some(CANARY)).status.success());
    let ws = cli.json(&["ws", "create", "--org", &org, "--name", "dev", "--runtime", "claude-code", "--model", "MiniMax-M2.7"]);
    let ws = ws["id"].as_str().unwrap().to_owned();
    let running = cli.json(&["ws", "provision", "--org", &org, &ws]);
    let pid = running["instance_id"].as_str().unwrap().split(':').nth(1).unwrap().to_owned();
    let alive = || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
    server.stop();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(alive(), "an upgrade of wsd does not kill the agents");

    let server = Server::start_with_config(&data, Some(config));
    let cli = Cli { server: &server, token };
    let shown = cli.json(&["ws", "show", "--org", &org, &ws]);
    assert_eq!((shown["status"].clone(), shown["instance_id"].clone()), (running["status"].clone(), running["instance_id"].clone()));
    assert!(stdout(&cli.run(&["ws", "logs", "--org", &org, &ws, "--tail", "3"], None)).starts_with("tick\n"));
    let stopped = cli.json(&["ws", "stop", "--org", &org, &ws]);
    assert_eq!(stopped["status"], "stopped");
    assert!(!alive(), "the restarted wsd stopped the adopted agent");
    server.stop();
}

/// One raw HTTP/1.1 POST; the answer's status code.
fn post_status(address: &str, path: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    use std::io::Read;
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    socket.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn usage_and_budgets_from_the_command_line() {
    // The workspace leaves its usage token where the test finds it; the provider is down.
    let config = r#"
[platform]
proxy_base_url = "http://127.0.0.1:9/llm"
[registry.overrides.minimax]
base_url_anthropic = "http://127.0.0.1:1/anthropic"
[backends.process.commands]
claude-code = ["sh", "-c", "printf %s \"$WSD_LLM_USAGE_TOKEN\" > \"$HOME/usage-token.tmp\" && mv \"$HOME/usage-token.tmp\" \"$HOME/usage-token\" && exec sleep 30"]
"#;
    let data = fresh_dir("cli-usage");
    let server = Server::start_with_config(&data, Some(config));
    let cli = Cli { server: &server, token: server.admin_token() };
    let org = cli.json(&["org", "create", "acme"])["id"].as_str().unwrap().to_owned();
    assert!(cli.run(&["secret", "set", "--platform", "MINIMAX_API_KEY"], Some(CANARY)).status.success());
    let ws = cli.json(&["ws", "create", "--org", &org, "--name", "dev", "--runtime", "claude-code", "--model", "minimax/MiniMax-M2.7"]);
    let ws = ws["id"].as_str().unwrap().to_owned();
    assert_eq!(cli.json(&["ws", "provision", "--org", &org, &ws])["status"], "running");
    let token_file = data.join("workspaces").join(&ws).join("home").join("usage-token");
    let mut token = String::new();
    for _ in 0..200 {
        if let Ok(t) = std::fs::read_to_string(&token_file) {
            token = t;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(token.starts_with("wsd_"), "no usage token at {}", token_file.display());

    let body = r#"{"model":"minimax/MiniMax-M2.7","max_tokens":8,"messages":[]}"#;
    assert_eq!(post_status(&server.address, "/llm/anthropic/v1/messages", &[("x-api-key", &token)], body), 502);

    // The failed call is on record, with its status.
    let mut requests = serde_json::Value::Null;
    for _ in 0..100 {
        requests = cli.json(&["usage", "requests", "--org", &org]);
        if requests["requests"].as_array().is_some_and(|r| !r.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        (requests["requests"][0]["status"].as_i64(), requests["requests"][0]["workspace_id"].as_str()),
        (Some(502), Some(ws.as_str()))
    );
    let table = stdout(&cli.run(&["usage", "requests", "--org", &org, "--workspace", &ws], None));
    assert!(table.contains("AT (UTC)") && table.contains("502") && table.contains("MiniMax-M2.7"), "{table}");
    // A refused call used no tokens: it cost nothing, which is known.
    assert!(table.contains("COST (USD)") && table.contains("$0.000000"), "{table}");
    let summary = stdout(&cli.run(&["usage", "summary", "--org", &org, "--from", "2020-01-01"], None));
    assert!(summary.starts_with("from 2020-01-01T00:00:00.000Z to ") && summary.contains(&ws), "{summary}");
    assert!(summary.contains("DAY (UTC)") && summary.contains("$0.000000"), "{summary}");
    let bad = cli.run(&["usage", "summary", "--org", &org, "--from", "2026-02-30"], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a date"));

    // Budgets.
    let none = stdout(&cli.run(&["budget", "show", "--org", &org], None));
    assert!(none.contains("has no budget"), "{none}");
    let set = stdout(&cli.run(&["budget", "set", "--org", &org, "--period", "month", "--tokens", "1000"], None));
    assert!(set.contains("org") && set.contains("1000 tokens") && set.contains("month"), "{set}");
    let set = stdout(&cli.run(&["budget", "set", "--org", &org, "--workspace", &ws, "--period", "week", "--usd", "12.50"], None));
    assert!(set.contains(&format!("workspace {ws}")) && set.contains("$12.500000") && set.contains("week"), "{set}");
    let shown = cli.json(&["budget", "list", "--org", &org]);
    let budgets = shown["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 2, "{shown}");
    assert_eq!((budgets[0]["unit"].as_str(), budgets[0]["limit"].as_i64()), (Some("tokens"), Some(1000)));
    assert_eq!((budgets[1]["unit"].as_str(), budgets[1]["limit"].as_i64()), (Some("usd"), Some(12_500_000)));
    let removed = stdout(&cli.run(&["budget", "remove", "--org", &org, budgets[1]["id"].as_str().unwrap()], None));
    assert!(removed.starts_with("removed budget"), "{removed}");
    assert_eq!(cli.json(&["budget", "show", "--org", &org])["budgets"].as_array().unwrap().len(), 1);
    // Rate limits.
    let shown = stdout(&cli.run(&["rate-limit", "show", "--org", &org], None));
    assert!(shown.contains("no limit requests and no limit tokens per minute (the platform's)"), "{shown}");
    let set = stdout(&cli.run(&["rate-limit", "set", "--org", &org, "--requests-per-minute", "60", "--tokens-per-minute", "0"], None));
    assert!(set.contains("60 requests and no limit tokens per minute (the org's own)"), "{set}");
    assert_eq!(cli.json(&["rate-limit", "show", "--org", &org])["requests_per_minute"], 60);
    let reset = stdout(&cli.run(&["rate-limit", "reset", "--org", &org], None));
    assert!(reset.contains("(the platform's)"), "{reset}");
    for bad in [
        &["--period", "year", "--tokens", "1"][..],
        &["--period", "day"],
        &["--period", "day", "--tokens", "1", "--usd", "1"],
        &["--period", "day", "--usd", "-3"],
    ] {
        let args = [&["budget", "set", "--org", &org][..], bad].concat();
        assert_eq!(cli.run(&args, None).status.code(), Some(2), "{bad:?}");
    }
    cli.json(&["ws", "stop", "--org", &org, &ws]);
    server.stop();
}

/// Pids of the sandboxes in this pid namespace (their outer process) whose argv holds `marker`.
fn sandboxes_running(marker: &str) -> Vec<u32> {
    let own = std::fs::read_link("/proc/self/ns/pid").ok();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() == own)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let argv = String::from_utf8_lossy(&c).replace('\0', " ");
                argv.contains("bwrap") && argv.contains(marker)
            })
        })
        .collect()
}

#[test]
fn after_kill_9_during_provisions_a_restart_leaves_no_unrecorded_workspace_process() {
    // A command line of this run's own, so nothing else's processes are counted.
    let marker = format!("sleep {}", 7_000_000 + std::process::id());
    let config = format!(
        "[policy]\nmax_running_workspaces_per_org = 0\n[backends.process.commands]\nclaude-code = [\"sleep\", \"{}\"]\n",
        7_000_000 + std::process::id()
    );
    let config = config.as_str();
    let data = fresh_dir("cli-kill9");
    let server = Server::start_with_config(&data, Some(config));
    let token = server.admin_token();
    let cli = Cli { server: &server, token: token.clone() };
    let org = cli.json(&["org", "create", "acme"])["id"].as_str().unwrap().to_owned();
    assert!(cli.run(&["secret", "set", "--org", &org, "MINIMAX_API_KEY"], Some(CANARY)).status.success());
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let name = format!("w{i}");
            let ws = cli.json(&["ws", "create", "--org", &org, "--name", &name, "--runtime", "claude-code", "--model", "MiniMax-M2.7"]);
            ws["id"].as_str().unwrap().to_owned()
        })
        .collect();
    // Provisions and restarts in flight from several clients when wsd is killed.
    let address = server.address.clone();
    let clients: Vec<_> = ids
        .iter()
        .map(|id| {
            let (address, token, path) = (address.clone(), token.clone(), format!("/v1/orgs/{org}/workspaces/{id}/provision"));
            std::thread::spawn(move || {
                for _ in 0..20 {
                    let Ok(mut socket) = std::net::TcpStream::connect(&address) else { return };
                    let request = format!("POST {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    if socket.write_all(request.as_bytes()).is_err() {
                        return;
                    }
                    let mut answer = String::new();
                    let _ = std::io::Read::read_to_string(&mut socket, &mut answer);
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(400));
    drop(server); // SIGKILL
    for client in clients {
        client.join().unwrap();
    }

    let server = Server::start_with_config(&data, Some(config));
    let cli = Cli { server: &server, token };
    let recorded: Vec<u32> = ids
        .iter()
        .filter_map(|id| {
            let shown = cli.json(&["ws", "show", "--org", &org, id]);
            let instance = shown["instance_id"].as_str()?.to_owned();
            (shown["status"] == "running").then(|| instance.split(':').nth(1).unwrap().parse().unwrap())
        })
        .collect();
    let mut running = sandboxes_running(&marker);
    running.sort_unstable();
    let mut expected = recorded.clone();
    expected.retain(|pid| running.contains(pid));
    expected.sort_unstable();
    assert_eq!(running, expected, "every workspace process that runs is one the store records ({recorded:?})");
    assert!(running.len() <= ids.len());
    for id in &ids {
        cli.json(&["ws", "stop", "--org", &org, id]);
    }
    assert!(sandboxes_running(&marker).is_empty(), "stop left a sandbox");
    server.stop();
}
