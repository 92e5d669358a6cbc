//! The configuration, API tokens and the audit log (admin routes).

use super::*;

pub(super) async fn config(State(api): State<Api>, who: Who) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let text = server
        .config_toml()
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/toml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}

/// A long-lived API token asked for.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewToken {
    /// What it is for (`prometheus`, `nvr`).
    name: String,
    /// The user it signs in as (default: the caller).
    user: Option<String>,
    /// Seconds it lasts (default a year, at most ten).
    ttl_s: Option<u64>,
}

/// A token just made.
#[derive(Serialize, JsonSchema)]
pub(super) struct MadeToken {
    /// Its entry.
    #[serde(flatten)]
    entry: TokenEntry,
    /// The token, for `Authorization: Bearer` (shown this once).
    token: String,
}

/// How long an API token lasts by default, and at most.
const API_TOKEN_TTL: (u64, u64) = (365 * 86_400, 3650 * 86_400);

pub(super) async fn create_token(State(api): State<Api>, who: Who, body: Bytes) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let asked: NewToken = typed(&body)?;
    let ttl = asked.ttl_s.unwrap_or(API_TOKEN_TTL.0);
    if !(1..=API_TOKEN_TTL.1).contains(&ttl) {
        return Err(ApiError::bad(format!("ttl_s must be 1..={}", API_TOKEN_TTL.1)).key("ttl_s"));
    }
    let user = asked.user.as_deref().unwrap_or(by(&who)).to_owned();
    // A token for someone else only from an admin who sees everything: no
    // one makes a token wider than their own grants.
    if user != by(&who) && !who.0.0.as_ref().is_none_or(Identity::sees_everything) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "only an admin whose grants cover every stream makes tokens for other users".into(),
        )
        .key("user"));
    }
    let (entry, token) = server
        .create_token(&asked.name, &user, Duration::from_secs(ttl), by(&who))
        .map_err(|e| ApiError::from(e).key(if asked.user.is_some() { "user" } else { "name" }))?;
    audit(
        &server,
        &who,
        "token create",
        &entry.id,
        &format!("{} for {user}", entry.name),
    );
    let mut response = json_response(&MadeToken { entry, token });
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

pub(super) async fn tokens(State(api): State<Api>, who: Who) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    Ok(json_response(&server.tokens()?))
}

pub(super) async fn revoke_token(State(api): State<Api>, who: Who, Path(id): Path<String>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let entry = server.tokens()?.into_iter().find(|t| t.id == id);
    server.revoke_token(&id)?;
    audit(&server, &who, "token revoke", &id, "");
    Ok(json_response(&entry))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<u32>,
    user: Option<String>,
}

pub(super) async fn audit_log(State(api): State<Api>, who: Who, query: Params<AuditQuery>) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let q = query.get()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad("limit must be 1..=10000".into()).key("limit"));
    }
    Ok(json_response(&server.audit_log(limit, q.user.as_deref())?))
}

pub(super) async fn reload(State(api): State<Api>, who: Who) -> Answer {
    let server = api.server()?;
    allow(&server, &who, Role::Admin, None)?;
    let applied = {
        let server = server.clone();
        blocking(move || server.reload()).await?
    };
    audit(
        &server,
        &who,
        "reload",
        "config",
        &serde_json::to_string(&applied).unwrap_or_default(),
    );
    Ok(json_response(&applied))
}
