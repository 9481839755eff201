//! The container backend against a real engine: Podman's Docker-compatible service, which
//! the tests start themselves (`wsd-testengine`), on an image built from files (a static
//! busybox). Each test is its own deployment (`owner`), so none removes another's
//! containers when it reconciles.
//!
//! Output is written in whole lines (`echo "$(cat F)"`, not `cat F; echo`): Podman 4.3's
//! log endpoint can drop a line's first part when it was written apart from its newline.
//!
//! Without Podman these tests are ignored at build time, never passed; CI sets
//! `WSD_TEST_REQUIRE_ENGINE=1`, which makes a missing engine fail them.
#![allow(clippy::disallowed_methods)]
#![cfg_attr(not(wsd_test_engine), allow(dead_code, unused_imports))]

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder, ListVolumesOptionsBuilder};
use wsd_backend::{
    Backend, BackendError, Confinement, DockerBackend, DockerOptions, InstanceStatus, LABEL_OWNER, Launch, LaunchFile, Limits, Network,
};
use wsd_core::SecretValue;

const CANARY_ENV: &str = "canary-container-env-3f1a";
const CANARY_FILE: &str = "canary-container-file-8c2d";

fn image() -> String {
    wsd_testengine::engine().image("wsd-busybox", &[])
}

fn options(owner: &str) -> DockerOptions {
    let engine = wsd_testengine::engine();
    let mut options =
        DockerOptions::new(&engine.host, std::env::temp_dir().join(format!("wsd-docker-logs-{owner}-{}", std::process::id())));
    options.owner = owner.into();
    options.images.insert("test".into(), image());
    options.grace = Duration::from_secs(1);
    options.network = "none".into();
    options
}

fn launch(id: &str, script: &str) -> Launch {
    Launch {
        workspace_id: id.into(),
        org_id: "org_test".into(),
        plan_hash: "f00d".into(),
        runtime: "test".into(),
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("SECRET_KEY".into(), SecretValue::new(CANARY_ENV)), ("GREETING".into(), SecretValue::new("hello"))],
        files: vec![LaunchFile { path: ".config/tool/credentials.json".into(), content: SecretValue::new(CANARY_FILE) }],
        host_uid: None,
        confinement: Confinement {
            network: Network::Host,
            limits: Limits { memory_mib: Some(256), processes: Some(64), open_files: Some(512) },
        },
    }
}

fn engine_client() -> Docker {
    let host = &wsd_testengine::engine().host;
    Docker::connect_with_unix(host.strip_prefix("unix://").unwrap(), 60, bollard::API_DEFAULT_VERSION).unwrap()
}

/// The output of a workspace once it printed `marker` (at most 20 s).
async fn output_until(backend: &DockerBackend, id: &str, marker: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = backend.logs(id, 1000).await.unwrap();
        if text.contains(marker) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn containers_of(owner: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{LABEL_OWNER}={owner}")])]);
    let list =
        engine_client().list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build())).await.unwrap();
    list.into_iter().filter_map(|c| c.id).collect()
}

async fn volumes_of(owner: &str) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{LABEL_OWNER}={owner}")])]);
    let list = engine_client().list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build())).await.unwrap();
    list.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect()
}

/// The env the engine gives besides the plan's (and `HOME`, which the backend sets).
const ENGINE_NAMES: [&str; 4] = ["PATH", "HOSTNAME", "TERM", "container"];

#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn a_container_runs_exactly_its_plan_as_a_confined_non_root_user() {
    let backend = DockerBackend::new(options("exact"));
    let script = "tr '\\0' '\\n' < /proc/1/environ; echo; id; \
                  stat -c '%a %u:%g %n' $HOME $HOME/.config $HOME/.config/tool $HOME/.config/tool/credentials.json; \
                  echo \"$(cat $HOME/.config/tool/credentials.json)\"; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; \
                  echo ready; sleep 300";
    let instance = backend.start(launch("ws_exact", script)).await.unwrap();
    let out = output_until(&backend, "ws_exact", "ready").await;

    let env: Vec<(&str, &str)> = out.lines().take_while(|l| !l.is_empty()).filter_map(|l| l.split_once('=')).collect();
    let names: Vec<&str> = env.iter().map(|(k, _)| *k).collect();
    for (key, value) in [("SECRET_KEY", CANARY_ENV), ("GREETING", "hello"), ("HOME", "/home/agent")] {
        assert!(env.contains(&(key, value)), "{key} is set as planned: {out}");
    }
    for name in names {
        assert!(["SECRET_KEY", "GREETING", "HOME"].contains(&name) || ENGINE_NAMES.contains(&name), "`{name}` is not in the plan: {out}");
    }
    assert!(out.contains("uid=1000(") && out.contains("gid=1000("), "the agent is not root: {out}");
    for line in ["700 1000:1000 /home/agent", "700 1000:1000 /home/agent/.config\n", "700 1000:1000 /home/agent/.config/tool\n"] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    assert!(out.contains("600 1000:1000 /home/agent/.config/tool/credentials.json"), "{out}");
    assert!(out.contains(CANARY_FILE), "the file holds the planned content");

    let inspected = engine_client().inspect_container(&instance, None::<InspectContainerOptions>).await.unwrap();
    let host = inspected.host_config.unwrap();
    // What the process really holds (engines spell a dropped `ALL` differently).
    for line in ["CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    assert_ne!(host.privileged, Some(true));
    assert_eq!(host.memory, Some(256 * 1024 * 1024));
    assert_eq!(host.pids_limit, Some(64));
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    let mounts: Vec<_> = inspected.mounts.unwrap_or_default().into_iter().map(|m| (m.name, m.destination)).collect();
    assert_eq!(mounts, [(Some("exact-ws_exact-work".into()), Some("/home/agent/work".into()))], "nothing of the host is mounted");
    let labels = inspected.config.unwrap().labels.unwrap();
    assert_eq!(labels.get("dev.wsd.workspace").map(String::as_str), Some("ws_exact"));
    assert_eq!(labels.get("dev.wsd.org").map(String::as_str), Some("org_test"));
    assert_eq!(labels.get("dev.wsd.plan-hash").map(String::as_str), Some("f00d"));
    assert_eq!(backend.status(&instance).await.unwrap(), InstanceStatus::Running);

    backend.stop("ws_exact", &instance).await.unwrap();
    backend.remove("ws_exact").await.unwrap();
}

#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn stop_removes_the_container_with_its_credentials_the_work_persists_and_delete_removes_all() {
    let owner = "persist";
    let backend = DockerBackend::new(options(owner));
    let script = "cat note 2>/dev/null || echo first run; echo kept > note; echo ready; trap 'echo bye; exit 3' TERM; sleep 300 & wait";
    let first = backend.start(launch("ws_persist", script)).await.unwrap();
    assert!(output_until(&backend, "ws_persist", "ready").await.contains("first run"));
    backend.stop("ws_persist", &first).await.unwrap();
    assert!(containers_of(owner).await.is_empty(), "stop leaves no container (the plan's files went with it)");
    assert_eq!(backend.status(&first).await.unwrap(), InstanceStatus::Missing);
    assert_eq!(volumes_of(owner).await.len(), 1, "the work volume stays");
    assert!(backend.logs("ws_persist", 10).await.unwrap().contains("bye"), "the last output outlives the container");

    let second = backend.start(launch("ws_persist", script)).await.unwrap();
    let out = output_until(&backend, "ws_persist", "ready").await;
    assert!(out.contains("kept") && !out.contains("first run"), "the work persisted: {out}");
    backend.stop("ws_persist", &second).await.unwrap();
    backend.remove("ws_persist").await.unwrap();
    assert!(containers_of(owner).await.is_empty());
    assert!(volumes_of(owner).await.is_empty(), "delete removes the volume");
    assert_eq!(backend.logs("ws_persist", 10).await.unwrap(), "");
}

/// With a read-only root filesystem the plan's files still arrive (before the start), and
/// the agent can write only to its work volume and `/tmp`.
#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_root_still_gets_the_plans_files() {
    let mut opts = options("readonly");
    opts.read_only_root = true;
    let backend = DockerBackend::new(opts);
    let script = "echo \"$(cat $HOME/.config/tool/credentials.json)\"; echo x > /etc/x 2>/dev/null && echo etc-writable; \
                  echo x > $HOME/x 2>/dev/null && echo home-writable; echo x > /tmp/x && echo tmp-writable; \
                  echo x > x && echo work-writable; echo ready; sleep 300";
    let instance = backend.start(launch("ws_readonly", script)).await.unwrap();
    let out = output_until(&backend, "ws_readonly", "ready").await;
    assert!(out.contains(CANARY_FILE), "{out}");
    assert!(!out.contains("etc-writable") && !out.contains("home-writable"), "{out}");
    assert!(out.contains("tmp-writable") && out.contains("work-writable"), "{out}");
    backend.stop("ws_readonly", &instance).await.unwrap();
    backend.remove("ws_readonly").await.unwrap();
}

#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn an_exit_is_reported_with_its_code() {
    let backend = DockerBackend::new(options("exit"));
    let instance = backend.start(launch("ws_exit", "echo going; exit 7")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while backend.status(&instance).await.unwrap() == InstanceStatus::Running && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(backend.status(&instance).await.unwrap(), InstanceStatus::Exited { code: Some(7) });
    assert!(backend.logs("ws_exit", 5).await.unwrap().contains("going"));
    backend.stop("ws_exit", &instance).await.unwrap();
    backend.remove("ws_exit").await.unwrap();
}

#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_of_wsd_adopts_its_containers_and_removes_those_nothing_records() {
    let owner = "adopt";
    let first = DockerBackend::new(options(owner));
    let kept = first.start(launch("ws_kept", "sleep 300")).await.unwrap();
    let stray = first.start(launch("ws_stray", "sleep 300")).await.unwrap();
    let neighbour = DockerBackend::new(options("adopt-neighbour"));
    let theirs = neighbour.start(launch("ws_theirs", "sleep 300")).await.unwrap();

    let second = DockerBackend::new(options(owner));
    let outcome = second.reconcile(&[("ws_kept".into(), kept.clone()), ("ws_gone".into(), "no-such-container".into())]).await;
    assert_eq!((outcome.adopted, outcome.gone, outcome.ended), (1, 1, 1));
    assert_eq!(second.status(&kept).await.unwrap(), InstanceStatus::Running);
    assert_eq!(second.status(&stray).await.unwrap(), InstanceStatus::Missing, "the unrecorded container is removed");
    assert_eq!(neighbour.status(&theirs).await.unwrap(), InstanceStatus::Running, "another deployment's container is left alone");

    second.stop("ws_kept", &kept).await.unwrap();
    for (backend, id) in [(&second, "ws_kept"), (&second, "ws_stray"), (&neighbour, "ws_theirs")] {
        backend.remove(id).await.unwrap();
    }
    assert!(containers_of("adopt-neighbour").await.is_empty() && containers_of(owner).await.is_empty());
}

#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn failures_name_their_cause_and_leave_nothing_behind() {
    let owner = "fail";
    let mut missing = options(owner);
    missing.images.insert("test".into(), "localhost/no-such-image:1".into());
    let error = DockerBackend::new(missing).start(launch("ws_fail", "true")).await.unwrap_err();
    assert!(matches!(&error, BackendError::ImageMissing(image) if image == "localhost/no-such-image:1"), "{error:?}");

    let mut unconfigured = options(owner);
    unconfigured.images.clear();
    let error = DockerBackend::new(unconfigured).start(launch("ws_fail", "true")).await.unwrap_err();
    assert!(matches!(&error, BackendError::NotConfigured(m) if m.contains("`test`")), "{error:?}");

    let backend = DockerBackend::new(options(owner));
    let mut launch_missing_command = launch("ws_fail", "");
    launch_missing_command.argv = vec!["/no/such/program".into()];
    let error = backend.start(launch_missing_command).await.unwrap_err();
    assert!(matches!(error, BackendError::Start { .. }), "{error:?}");
    assert!(containers_of(owner).await.is_empty(), "a failed start removes its container");
    assert!(volumes_of(owner).await.is_empty(), "and the volume it made");
    // A workspace that ran before keeps its work through a failed start.
    let instance = backend.start(launch("ws_fail", "echo kept > note; sleep 300")).await.unwrap();
    backend.stop("ws_fail", &instance).await.unwrap();
    let mut broken = launch("ws_fail", "");
    broken.argv = vec!["/no/such/program".into()];
    assert!(backend.start(broken).await.is_err());
    assert_eq!(volumes_of(owner).await.len(), 1, "the work volume of a workspace that ran stays");
    backend.remove("ws_fail").await.unwrap();

    let mut down = options("down");
    down.host = format!("unix://{}", std::env::temp_dir().join("wsd-no-engine.sock").display());
    let down = DockerBackend::new(down);
    assert!(matches!(down.start(launch("ws_down", "true")).await, Err(BackendError::Unavailable(_))));
    assert!(matches!(down.status("anything").await, Err(BackendError::Unavailable(_))));
    assert!(down.probe().await.is_err());
}

/// A prompt-injected agent in one container looks for another workspace's secrets (its env
/// and files), for wsd's (the test process's env), and tries to kill the other workspace
/// and to outlive its own stop. The same search run inside the victim finds the victim's
/// canaries, so the search itself works.
#[cfg_attr(not(wsd_test_engine), ignore = "Podman is not installed (apt-get install podman runc busybox-static)")]
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_workspace_reaches_nothing_of_another_or_of_wsd() {
    let owner = "hostile";
    let mut opts = options(owner);
    opts.network = "bridge".into();
    let backend = DockerBackend::new(opts);
    let search = "for f in /proc/[0-9]*/environ; do cat $f 2>/dev/null | tr '\\0' '\\n'; done | grep -o 'canary-[a-z0-9-]*' | sort -u; \
                  cat /home/*/.config/tool/credentials.json /proc/*/root/home/agent/.config/tool/credentials.json 2>/dev/null; echo; \
                  ls /proc | grep -c '^[0-9]'; echo searched";
    let mut victim_launch = launch("ws_victim", &format!("{search}; sleep 300"));
    victim_launch.env[0].1 = SecretValue::new("canary-victim-env-71b2");
    victim_launch.files[0].content = SecretValue::new("canary-victim-file-03ce");
    let victim = backend.start(victim_launch).await.unwrap();
    let inside = output_until(&backend, "ws_victim", "searched").await;
    assert!(inside.contains("canary-victim-env-71b2") && inside.contains("canary-victim-file-03ce"), "the search works: {inside}");

    let attack = format!("{search}; kill -9 -1; pkill sleep; sh -c 'sleep 600' & echo attacked; sleep 300");
    let attacker = backend.start(launch("ws_attacker", &attack)).await.unwrap();
    let out = output_until(&backend, "ws_attacker", "attacked").await;
    assert!(out.contains("searched"), "{out}");
    assert!(!out.contains("canary-victim"), "the attacker read the victim's secrets: {out}");
    assert!(!out.contains("wsd-backend"), "{out}");
    assert_eq!(backend.status(&victim).await.unwrap(), InstanceStatus::Running, "the victim still runs");

    backend.stop("ws_attacker", &attacker).await.unwrap();
    assert!(!containers_of(owner).await.contains(&attacker), "nothing of the attacker outlives its stop");
    backend.stop("ws_victim", &victim).await.unwrap();
    for id in ["ws_attacker", "ws_victim"] {
        backend.remove(id).await.unwrap();
    }
}
