//! The listener's routes described once: each [`Route`] carries its
//! handler and what OpenAPI 3.1 says of it, so the router and the document
//! at `/api/v1/openapi.json` are built from the same list — no route
//! without its description, none described that is not served. Request
//! and answer schemas come from the handlers' own types (schemars, JSON
//! Schema 2020-12, as OpenAPI 3.1 uses it).

use axum::Router;
use axum::http::Method;
use axum::routing::MethodRouter;
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings, json_schema};
use serde_json::{Map, Value, json};

/// A schema made by a generator (a `$ref` to a component, or inline).
pub type MakeSchema = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`, as a component.
pub fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// Bytes of some media type.
pub fn binary(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "binary"})
}

/// Any JSON object (a node's keys, which depend on its kind).
pub fn object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object"})
}

/// One route: a method on a path, its handler, and its description.
pub struct Route<S> {
    /// The method.
    pub method: Method,
    /// The path, with `{param}` segments (axum's and OpenAPI's syntax alike).
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Who may call it: `viewer`, `operator`, `admin`; `None`: anyone
    /// (signing in itself).
    pub role: Option<&'static str>,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    /// The request body: media type and schema.
    pub body: Option<(&'static str, MakeSchema)>,
    /// The success answer: status, media type and schema.
    pub answer: (u16, &'static str, MakeSchema),
    /// The handler.
    pub handler: MethodRouter<S>,
}

/// A route without its handler: what the document says of it.
pub struct Doc {
    method: Method,
    path: &'static str,
    summary: &'static str,
    role: Option<&'static str>,
    query: &'static [(&'static str, &'static str)],
    body: Option<(&'static str, MakeSchema)>,
    answer: (u16, &'static str, MakeSchema),
}

/// The router of `routes`, and their descriptions.
pub fn build<S: Clone + Send + Sync + 'static>(routes: Vec<Route<S>>) -> (Router<S>, Vec<Doc>) {
    let mut router = Router::new();
    let mut docs = Vec::with_capacity(routes.len());
    for r in routes {
        router = router.route(r.path, r.handler);
        docs.push(Doc {
            method: r.method,
            path: r.path,
            summary: r.summary,
            role: r.role,
            query: r.query,
            body: r.body,
            answer: r.answer,
        });
    }
    (router, docs)
}

/// The OpenAPI 3.1 document of `docs` (every route the listener serves).
pub fn document(docs: &[Doc]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    let mut paths = Map::new();
    for d in docs {
        let mut parameters: Vec<Value> = d
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        parameters.extend(d.query.iter().map(|(name, description)| {
            json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
        }));
        let (status, media, answer) = d.answer;
        let mut responses = Map::new();
        responses.insert(
            status.to_string(),
            json!({"description": "done", "content": {media: {"schema": answer(&mut generator)}}}),
        );
        let error = json!({
            "description": "refused: the message says why (JSON from /api/v1 and /metrics, text from the media routes)",
            "content": {
                "application/json": {"schema": generator.subschema_for::<ErrorAnswer>()},
                "text/plain": {"schema": {"type": "string"}},
            },
        });
        responses.insert("default".into(), error);
        let mut operation = json!({
            "summary": d.summary,
            "operationId": operation_id(&d.method, d.path),
            "parameters": parameters,
            "responses": responses,
        });
        match d.role {
            Some(role) => {
                operation["description"] =
                    json!(format!("Needs the {role} role (or better) once users are configured."))
            }
            None => operation["security"] = json!([]),
        }
        if let Some((media, body)) = d.body {
            operation["requestBody"] = json!({"required": true, "content": {media: {"schema": body(&mut generator)}}});
        }
        let entry = paths.entry(d.path).or_insert_with(|| json!({}));
        entry[d.method.as_str().to_ascii_lowercase()] = operation;
    }
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Eyrie",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The media routes and the control API of an Eyrie server. Without [[server.users]] the listener is on loopback and nothing signs in; with users every route but /api/v1/login needs credentials.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "digest": {"type": "http", "scheme": "digest"},
                "bearer": {"type": "http", "scheme": "bearer", "description": "A token from POST /api/v1/login."},
            },
        },
        "security": [{"basic": []}, {"digest": []}, {"bearer": []}],
    })
}

/// `get /api/v1/nodes/{name}` → `get_api_v1_nodes_name`.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        id.push('_');
        let part = part.trim_matches(['{', '}']);
        id.extend(part.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }));
    }
    if path == "/" {
        id.push_str("_page");
    }
    id
}

/// An error answer's body (the control API's).
#[derive(serde::Serialize, JsonSchema)]
pub struct ErrorAnswer {
    /// What went wrong.
    pub error: ErrorBody,
}

/// The error itself.
#[derive(serde::Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub status: u16,
    /// `invalid_input`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `unavailable`, `timeout`, `internal`.
    pub kind: String,
    /// What is wrong, naming the key, node or stream.
    pub message: String,
    /// The key at fault (`node.bitrate`).
    pub key: Option<String>,
    /// Its JSON path (`$.bitrate`).
    pub path: Option<String>,
}
