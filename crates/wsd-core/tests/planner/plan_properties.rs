//! The planner's invariants (I1–I7, listed in ARCHITECTURE.md) over generated workspaces: every runtime and
//! model of the shipped registry, and random sets of org and workspace secrets drawn from
//! every LLM credential key, routing key, reserved name and ordinary name.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{PROXY, registry, spec};
use proptest::prelude::*;
use proptest::sample::subsequence;
use wsd_core::plan::{
    CredentialDelivery, DeliveryChoice, DeliverySetBy, EntryOrigin, EnvValue, Plan, PlatformSettings, Policy, Routing, SecretNames,
    SecretOrigin, WorkspaceSpec,
};
use wsd_core::registry::{AuthMode, CredentialSource, Projection};
use wsd_core::{EnvKey, PlanError};

fn key_pool() -> Vec<EnvKey> {
    let r = registry();
    let mut pool: BTreeSet<EnvKey> = r.credential_keys().iter().chain(r.routing_keys()).cloned().collect();
    for rt in r.runtimes() {
        pool.extend(rt.model_env.iter().cloned());
        pool.extend(rt.side_model_env.iter().cloned());
        pool.extend(rt.hardening_env.keys().cloned());
    }
    for name in ["DATABASE_URL", "SENTRY_DSN", "NPM_TOKEN", "GITHUB_TOKEN", "WSD_MODEL", "WSD_LLM_BASE_URL"] {
        pool.insert(EnvKey::new(name).unwrap());
    }
    pool.into_iter().collect()
}

/// The pool without operator-scope names, which refuse every plan when they come from the org.
fn org_pool() -> Vec<EnvKey> {
    let policy = Policy::default();
    key_pool().into_iter().filter(|k| !policy.is_forbidden_for_org(k)).collect()
}

/// Every key some provider accepts, so that many generated workspaces hold a usable one.
fn provider_keys() -> Vec<EnvKey> {
    let keys: BTreeSet<EnvKey> =
        registry().providers().iter().flat_map(|p| p.auth_env.iter().cloned()).filter(|k| !k.as_str().starts_with("WSD_")).collect();
    keys.into_iter().collect()
}

fn workspace_cases() -> Vec<(String, String)> {
    let r = registry();
    let mut cases = Vec::new();
    for rt in r.runtimes() {
        for (_, models) in r.native_providers(rt) {
            cases.extend(models.iter().map(|m| (rt.name.clone(), m.clone())));
        }
        for extra in [
            "claude-haiku-4-5-20251001",
            "kimi-latest",
            "GLM-4.6",
            "deepseek-chat",
            "openrouter/x/y",
            "groq:llama",
            "gemini-2.5-pro",
            "gpt-4o",
            "unknown-model",
            "",
        ] {
            cases.push((rt.name.clone(), extra.to_owned()));
        }
    }
    cases
}

prop_compose! {
    fn inputs()(
        case in proptest::sample::select(workspace_cases()),
        org in subsequence(org_pool(), 0..8),
        provider_key in proptest::option::weighted(0.7, proptest::sample::select(provider_keys())),
        operator_key in proptest::option::weighted(0.05, proptest::sample::select(vec!["GITHUB_TOKEN", "WSD_MODEL", "AWS_SESSION_TOKEN"])),
        workspace in subsequence(key_pool(), 0..5),
        platform in any::<bool>(),
    ) -> ((String, String), SecretNames, bool) {
        let mut org: BTreeSet<EnvKey> = org.into_iter().collect();
        org.extend(provider_key);
        org.extend(operator_key.map(|k| EnvKey::new(k).unwrap()));
        (case, SecretNames { org, workspace: workspace.into_iter().collect() }, platform)
    }
}

/// Plans with unverified runtime–provider pairs allowed: the invariants hold of every plan
/// the planner can make.
fn run(case: &(String, String), secrets: &SecretNames, platform: bool) -> Result<Plan, PlanError> {
    run_with(case, secrets, platform, &Policy { allow_unverified: true, ..Policy::default() })
}

fn run_with(case: &(String, String), secrets: &SecretNames, platform: bool, policy: &Policy) -> Result<Plan, PlanError> {
    let settings = PlatformSettings { proxy_base_url: PROXY.into() };
    wsd_core::plan(registry(), &spec(&case.0, &case.1), secrets, platform.then_some(&settings), policy)
}

fn effective(secrets: &SecretNames) -> BTreeMap<EnvKey, SecretOrigin> {
    let mut map: BTreeMap<EnvKey, SecretOrigin> = secrets.org.iter().map(|k| (k.clone(), SecretOrigin::Org)).collect();
    map.extend(secrets.workspace.iter().map(|k| (k.clone(), SecretOrigin::Workspace)));
    map
}

/// Names wsd writes itself for this plan; a secret of that name never survives.
fn reserved(plan: &Plan, key: &EnvKey) -> bool {
    let rt = registry().runtime(&plan.runtime).unwrap();
    key.as_str().starts_with("WSD_")
        || rt.model_env.contains(key)
        || rt.hardening_env.contains_key(key)
        || registry().side_model_env(rt, &plan.provider).contains(key)
}

fn is_llm_key(key: &EnvKey) -> bool {
    registry().is_credential_key(key) || registry().is_routing_key(key)
}

/// 2,000 generated workspaces per property, unless `PROPTEST_CASES` says otherwise (mutation
/// testing runs fewer: every mutant is still caught with them).
#[allow(clippy::disallowed_methods, reason = "proptest's own setting, read as proptest reads it")]
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 2000;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    /// By default only a verified runtime–provider pair is planned; allowing unverified
    /// pairs changes nothing else.
    #[test]
    fn unverified_pairs_are_refused_unless_allowed((case, secrets, platform) in inputs()) {
        let default = run_with(&case, &secrets, platform, &Policy::default());
        let allowed = run(&case, &secrets, platform);
        let runtime = registry().runtime(&case.0);
        match &default {
            Err(PlanError::UnverifiedRuntimeProvider { runtime: name, provider }) => {
                prop_assert_eq!(name, &case.0);
                prop_assert!(registry().verified_on(runtime.unwrap(), provider).is_empty());
                if let Ok(plan) = &allowed {
                    prop_assert!(plan.verified_on.is_empty());
                    prop_assert!(plan.warnings.iter().any(|w| w.contains("has not been verified")), "{:?}", plan.warnings);
                }
            }
            Ok(plan) => {
                prop_assert!(!plan.verified_on.is_empty());
                prop_assert_eq!(&plan.verified_on[..], registry().verified_on(runtime.unwrap(), &plan.provider));
                prop_assert!(!plan.warnings.iter().any(|w| w.contains("has not been verified")));
                prop_assert_eq!(&default, &allowed);
            }
            Err(_) => prop_assert_eq!(&default, &allowed),
        }
    }

    #[test]
    fn invariants_hold((case, secrets, platform) in inputs()) {
        let result = run(&case, &secrets, platform);
        // I6: same input, same output.
        prop_assert_eq!(&result, &run(&case, &secrets, platform));
        let Ok(plan) = result else { return Ok(()) };
        prop_assert!(plan.credential.is_some(), "an Ok plan names its credential");
        let provider = registry().provider(&plan.provider).unwrap();
        let effective = effective(&secrets);

        // I7: every input key has exactly one decision per origin it was given with.
        for (origin, names) in [(EntryOrigin::Org, &secrets.org), (EntryOrigin::Workspace, &secrets.workspace)] {
            for key in names {
                let n = plan.decisions.iter().filter(|d| &d.key == key && d.origin == origin).count();
                prop_assert_eq!(n, 1, "{} ({:?}) has {} decisions", key, origin, n);
            }
            prop_assert!(plan.decisions.iter().filter(|d| d.origin == origin).all(|d| names.contains(&d.key)));
        }
        // Every env entry that is not an input is explained by an injected or projected decision.
        for (key, entry) in &plan.env {
            if matches!(entry.origin, EntryOrigin::Injected | EntryOrigin::Projected) {
                prop_assert!(plan.decisions.iter().any(|d| &d.key == key && d.origin == entry.origin));
            }
        }

        // I4: non-LLM secrets pass unchanged, whatever the routing.
        for (key, origin) in &effective {
            if !is_llm_key(key) && !reserved(&plan, key) {
                let expected = EnvValue::Secret { key: key.clone(), origin: *origin };
                prop_assert_eq!(plan.env.get(key).map(|e| &e.value), Some(&expected), "{}", key);
            }
        }

        match plan.routing {
            Routing::Byok => {
                prop_assert!(!provider.platform);
                for entry in plan.env.values() {
                    if let EnvValue::Secret { key, origin: SecretOrigin::Org } = &entry.value {
                        // I1: no org credential outside the provider's auth_env, no org routing key.
                        if registry().is_credential_key(key) {
                            prop_assert!(provider.accepts(key), "org {} reached a {} workspace", key, provider.name);
                        }
                        prop_assert!(!registry().is_routing_key(key), "org routing key {} kept", key);
                    }
                    prop_assert!(entry.value != EnvValue::UsageToken, "a BYOK workspace got the usage token");
                }
                // I2: every workspace secret reaches the env unchanged.
                for (key, origin) in &effective {
                    if *origin == SecretOrigin::Workspace && !reserved(&plan, key) {
                        let expected = EnvValue::Secret { key: key.clone(), origin: SecretOrigin::Workspace };
                        prop_assert_eq!(plan.env.get(key).map(|e| &e.value), Some(&expected), "{}", key);
                    }
                }
            }
            Routing::Platform => {
                prop_assert!(provider.platform);
                // I3: no vendor credential from any secret; the usage token is there.
                for (key, entry) in &plan.env {
                    if let EnvValue::Secret { key: source, .. } = &entry.value {
                        prop_assert!(!is_llm_key(source) && !is_llm_key(key), "{} <- {} on a platform workspace", key, source);
                    }
                }
                prop_assert_eq!(plan.env.get("WSD_LLM_USAGE_TOKEN").map(|e| &e.value), Some(&EnvValue::UsageToken));
            }
        }

        // I5, checked independently of the planner's own parity code: with env projection,
        // the first precedence tier with anything set holds exactly one credential.
        let rt = registry().runtime_for(registry().runtime(&plan.runtime).unwrap(), &plan.provider);
        if let Projection::Env { .. } = rt.projection {
            let tier = rt.credential_precedence.iter().map(|tier| {
                tier.iter().filter(|read| matches!(&read.source, CredentialSource::Env(k) if plan.env.contains_key(k))).count()
            }).find(|&n| n > 0);
            prop_assert_eq!(tier, Some(1));
        }
    }
}

fn run_proxied(case: &(String, String), secrets: &SecretNames, platform: bool) -> Result<Plan, PlanError> {
    let settings = PlatformSettings { proxy_base_url: PROXY.into() };
    let delivery = DeliveryChoice { delivery: CredentialDelivery::Proxy, set_by: DeliverySetBy::Org };
    let spec = WorkspaceSpec { delivery, ..spec(&case.0, &case.1) };
    wsd_core::plan(registry(), &spec, secrets, platform.then_some(&settings), &Policy { allow_unverified: true, ..Policy::default() })
}

proptest! {
    #![proptest_config(config())]

    /// I8: with credential delivery `proxy`, no LLM credential or endpoint of the tenant's
    /// reaches a workspace whose key wsd can exchange (any but a subscription login): it
    /// holds the usage token, and the proxy sends the very credential a direct plan would
    /// have the runtime send.
    #[test]
    fn proxy_delivery_keeps_every_llm_secret_in_wsd((case, secrets, platform) in inputs()) {
        let Ok(plan) = run_proxied(&case, &secrets, platform) else { return Ok(()) };
        let provider = registry().provider(&plan.provider).unwrap();
        let subscription = provider.auth_mode == AuthMode::Oauth;
        prop_assert_eq!(plan.delivery.delivery == CredentialDelivery::Proxy, plan.routing == Routing::Platform || !subscription);
        prop_assert_eq!(plan.delivery.proxied.is_some(), plan.routing == Routing::Byok && !subscription);
        if plan.delivery.delivery == CredentialDelivery::Direct {
            // The same plan as without proxy delivery, but for its explanation.
            let direct = run(&case, &secrets, platform).unwrap();
            prop_assert_eq!((&plan.env, &plan.files, &plan.credential), (&direct.env, &direct.files, &direct.credential));
            return Ok(());
        }
        for (key, entry) in &plan.env {
            if let EnvValue::Secret { key: source, .. } = &entry.value {
                prop_assert!(!is_llm_key(source) && !is_llm_key(key), "{} <- {} under proxy delivery", key, source);
            }
        }
        let secret_file = plan.files.iter().find(|f| matches!(f.content, wsd_core::plan::FileContent::Secret { .. }));
        prop_assert!(secret_file.is_none(), "a secret file under proxy delivery");
        prop_assert_eq!(plan.credential.as_ref().map(|c| &c.value), Some(&EnvValue::UsageToken));
        if let (Some(proxied), Ok(direct)) = (&plan.delivery.proxied, run(&case, &secrets, platform)) {
            prop_assert!(provider.accepts(&proxied.key));
            let expected = EnvValue::Secret { key: proxied.key.clone(), origin: proxied.origin };
            prop_assert_eq!(direct.credential.map(|c| c.value), Some(expected));
        }
    }
}

/// The generator reaches both routings and Ok plans often enough for the invariants above
/// to mean something.
#[test]
fn generated_inputs_cover_plans_of_both_routings() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut byok, mut platform, mut refused) = (0, 0, 0);
    let inputs = inputs();
    for _ in 0..2000 {
        let (case, secrets, proxy) = inputs.new_tree(&mut runner).unwrap().current();
        match run(&case, &secrets, proxy) {
            Ok(plan) if plan.routing == Routing::Byok => byok += 1,
            Ok(_) => platform += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(byok > 350 && platform > 120 && refused > 200, "byok {byok}, platform {platform}, refused {refused}");
}
