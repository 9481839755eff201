//! Every error code the API and the proxy answer with, in one table, each with what it
//! means. The planner's refusals (`wsd_core::ErrorCode`) and the store's failures
//! (`StoreError::code`) are codes too, mapped in `error.rs`; `docs/error-codes.md` lists
//! all of them, and a test keeps it true to this table.

macro_rules! codes {
    ($($name:ident: $meaning:literal,)*) => {
        $(#[doc = $meaning] pub const $name: &str = stringify!($name);)*
        /// (code, meaning) for every code above.
        pub const ALL: &[(&str, &str)] = &[$((stringify!($name), $meaning)),*];
    };
}

codes! {
    // Requests.
    INVALID_REQUEST: "The body does not fit the endpoint (a missing or unknown field, a wrong type).",
    INVALID_JSON: "The body is not JSON.",
    UNSUPPORTED_MEDIA_TYPE: "The body is not sent as `application/json`.",
    BODY_TOO_LARGE: "The body is over the endpoint's limit.",
    BODY_UNREADABLE: "The body could not be read.",
    INVALID_QUERY: "A query parameter is missing, unknown or out of range.",
    INVALID_PATH: "The path is not UTF-8 once percent-decoded.",
    INVALID_ID: "An id in the path is not a valid id.",
    INVALID_NAME: "A name is empty, too long, or holds control, bidirectional or invisible characters.",
    MODEL_REQUIRED: "A proxied request names no model.",
    INVALID_MODEL: "A model id is too long or holds control characters.",
    INVALID_KEY: "A secret's KEY is not an env-var name (`^[A-Z_][A-Z0-9_]*$`).",
    RESERVED_KEY: "A secret's KEY starts with `WSD_`, which is wsd's own.",
    PROTECTED_ENV_KEY: "A secret's KEY steers how programs start in a workspace (`LD_PRELOAD`, `PATH` …); no tenant may set it.",
    INVALID_VALUE: "A secret's value is empty or holds a NUL byte.",
    VALUE_TOO_LARGE: "A secret's value is over 32 KiB.",
    INVALID_BUDGET: "A budget's unit is not `tokens` or `usd`, its period not `day`, `week` or `month`, or its limit is negative.",
    // Who is asking.
    UNAUTHENTICATED: "No token, or one that is not valid (unknown, revoked, or of another kind).",
    FORBIDDEN: "The token may not do this (an org token asking for an admin operation).",
    NOT_FOUND: "No such thing, or it belongs to another org.",
    METHOD_NOT_ALLOWED: "The endpoint does not take that method.",
    CONFLICT: "A thing of that name already exists.",
    LAST_ADMIN_TOKEN: "The last live admin token cannot be revoked.",
    // Workspaces.
    QUOTA_EXCEEDED: "The org runs as many workspaces as `[policy] max_running_workspaces_per_org` allows.",
    NO_BACKEND: "This server runs no backend for workspaces.",
    BACKEND_UNAVAILABLE: "The backend cannot run workspaces (its sandbox cannot be set up, or its container engine does not answer); the message says why.",
    NO_RUNTIME_COMMAND: "No command is configured for the workspace's runtime.",
    BACKEND_START_FAILED: "The backend could not start the workspace.",
    CSRF_REJECTED: "A console form without this session's CSRF token (or a sign-in form from another page load) is refused.",
    BACKEND_IMAGE_MISSING: "The image a runtime is configured to run is not in the container engine; the message names it.",
    NO_RUNTIME_IMAGE: "No container image is configured for the workspace's runtime ([backends.docker.images]).",
    BACKEND_STOP_FAILED: "The backend could not stop the workspace.",
    BACKEND_REMOVE_FAILED: "The backend could not remove what the workspace left.",
    BACKEND_LOGS_FAILED: "The backend could not read the workspace's output.",
    SECRET_CHANGED: "A secret changed while the workspace was provisioned; try again.",
    NO_USAGE_TOKEN: "A plan needed a usage token that was not minted (a bug; the log has it).",
    PREFLIGHT_FAILED: "The liveness check of a key failed for another reason than the key.",
    PREFLIGHT_UNSUPPORTED: "The liveness check cannot test this credential (a login file, an endpoint of the workspace's own).",
    INVALID_BYOK_CREDENTIAL: "The provider rejected the key the workspace would use.",
    PROVIDER_UNREACHABLE: "The provider did not answer the liveness check.",
    // The metering proxy.
    ENDPOINT_NOT_ALLOWED: "The proxy forwards model calls only; this method and path is not one.",
    MODEL_NOT_ALLOWED: "The request names another model than the workspace's own.",
    WORKSPACE_MISMATCH: "The request names another workspace than its usage token's.",
    BUDGET_EXCEEDED: "A budget of the org or the workspace would be exceeded by this request's estimate (spent + reserved + estimate over its limit).",
    RATE_LIMITED: "The workspace sent more requests or used more tokens in the last minute than its rate limits allow; `Retry-After` says when to retry.",
    BUDGET_PRICE_UNKNOWN: "A USD budget applies and the price book has no price for the model, so its cost cannot be checked.",
    UNKNOWN_MODEL_NAMESPACE: "No provider serves the model's `vendor/` namespace.",
    UNSUPPORTED_SURFACE: "The provider has no endpoint for this protocol.",
    PLATFORM_KEY_MISSING: "The platform has no key for the provider (a platform secret).",
    PROXIED_KEY_MISSING: "The secret a proxy-delivered workspace's calls are sent with is no longer set; set it again.",
    UNKNOWN_PROVIDER: "The provider a workspace was provisioned for is no longer in the registry; provision it again.",
    PROXY_DISABLED: "This server runs no metering proxy.",
    UPSTREAM_TIMEOUT: "The provider stayed silent longer than `[proxy] upstream_timeout_seconds`.",
    UPSTREAM_UNREACHABLE: "The provider could not be reached.",
    UPSTREAM_FAILED: "The provider closed the connection without an answer.",
    UPSTREAM_INVALID: "The provider's answer could not be passed on.",
    UPSTREAM_STREAM_TRUNCATED: "The provider's stream broke or ended before its final event (an error event in the stream).",
    UPSTREAM_PROTOCOL_ERROR: "The provider broke its protocol (an event line over 1 MiB); an error event in the stream.",
    CLIENT_CLOSED: "The client left before the answer was complete (ledger status 499).",
    // The server.
    TOO_MANY_CONNECTIONS: "The server is at `[server] max_connections`; retry.",
    STORAGE_UNAVAILABLE: "The database does not answer (`/readyz`).",
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_is_its_own_name_and_says_what_it_means() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, meaning) in super::ALL {
            assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{code}");
            assert!(meaning.ends_with('.') && meaning.len() > 20, "{code}: {meaning}");
            assert!(seen.insert(code), "{code} twice");
        }
        assert_eq!(super::QUOTA_EXCEEDED, "QUOTA_EXCEEDED");
    }

    #[test]
    fn the_documented_table_is_this_one() {
        let doc = include_str!("../../../docs/error-codes.md");
        for (code, meaning) in super::ALL {
            assert!(doc.contains(&format!("| `{code}` | {meaning} |")), "docs/error-codes.md does not say what {code} means");
        }
        let listed = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(listed, super::ALL.len() + 12 + 8, "a code in the docs that no table has (12 planner codes, 8 store codes)");
    }
}
