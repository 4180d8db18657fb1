//! What the derived OpenAPI schemas cannot say alone: the values an enum
//! field takes (from the library's own lists, so that the document follows
//! the code), the name and key patterns the engine enforces, and the error
//! responses every route of a group can give because of the layers around it
//! (auth, timeout, body limits).
//!
//! The document is checked against the running server by schemathesis
//! (`scripts/api-conformance.sh`): a value the schema allows and the server
//! refuses as malformed (400) is a bug of one or the other.

use std::collections::BTreeSet;

use cairn::{BackupKind, BackupStatus, JobKind, JobState, VerifyTier};
use serde_json::Value;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Target and component names: `[a-z0-9][a-z0-9_-]{0,62}`.
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// A string that takes one of `values`; with `nullable`, `null` too.
fn one_of<'a>(values: impl IntoIterator<Item = &'a str>, nullable: bool) -> Object {
    let mut list: Vec<Value> = values.into_iter().map(Value::from).collect();
    let kind = if nullable {
        list.push(Value::Null);
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .enum_values(Some(list))
        .build()
}

/// Every backup kind.
pub fn backup_kind() -> Object {
    one_of(BackupKind::ALL.iter().map(BackupKind::as_str), false)
}

/// The kinds a client may ask a backup to have (`uploaded` comes from uploads).
pub fn requested_backup_kind() -> Object {
    one_of(
        BackupKind::ALL
            .iter()
            .filter(|k| **k != BackupKind::Uploaded)
            .map(BackupKind::as_str),
        true,
    )
}

/// A `confirm` that must be given as `true`: what the engine refuses
/// otherwise (422) is outside the schema too, so that generated clients
/// and conformance tools know it.
pub fn must_be_true() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Boolean))
        .enum_values(Some([true]))
        .build()
}

/// Every backup status.
pub fn backup_status() -> Object {
    one_of(BackupStatus::ALL.iter().map(|s| s.as_str()), false)
}

/// Every job kind.
pub fn job_kind() -> Object {
    one_of(JobKind::ALL.iter().map(|k| k.as_str()), false)
}

/// Every job state.
pub fn job_state() -> Object {
    one_of(JobState::ALL.iter().map(|s| s.as_str()), false)
}

/// Every verification tier, or null (full).
pub fn verify_tier() -> Object {
    one_of(VerifyTier::ALL.iter().map(|t| t.as_str()), true)
}

/// A list of component names.
pub fn component_names() -> utoipa::openapi::schema::Array {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(NAME_PATTERN)),
        )
        .build()
}

/// The names of a job's events.
pub fn event_name() -> Object {
    one_of(["job", "end", "error"], false)
}

/// An event's data: a job document as JSON text.
pub fn event_data() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .content_schema(Some(Ref::from_schema_name("JobView")))
        .build()
}

/// The `Idempotency-Key` header of every POST that starts a job.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// Same key and same body within 24 h: the same job, not a new one.
    /// 1 to 255 visible ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        nullable = false
    )]
    pub key: Option<String>,
}

/// The `Range` header of archive downloads.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct RangeHeader {
    /// One byte range: `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX`.
    /// Anything else, or a range outside the archive, is answered 416.
    #[param(
        rename = "Range",
        pattern = "^bytes=([0-9]{1,19}-[0-9]{0,19}|-[0-9]{1,19})$",
        nullable = false
    )]
    pub range: Option<String>,
}

/// An error response the layers around a group of routes can give.
#[derive(Debug, Clone, Copy)]
pub enum Layer {
    /// A bearer token is checked: 401, 403.
    Auth,
    /// The request has a time limit: 408.
    Timeout,
}

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| error(description));
}

/// Documents on every operation of `api` the errors its inputs and `layers`
/// can give: 400 (malformed parameters or body), 413 and 415 (a JSON body
/// too large or not JSON), 401/403 and 408 from the layers, 500.
pub fn document_errors(api: &mut OpenApi, layers: &[Layer]) {
    for op in operations(api) {
        let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
        let json_body = op.request_body.as_ref().is_some_and(|b| match b {
            RefOr::T(b) => b.content.contains_key("application/json"),
            RefOr::Ref(_) => false,
        });
        if has_params || op.request_body.is_some() {
            add(op, "400", "Malformed parameters or body");
        }
        if json_body {
            add(op, "413", "The body is larger than the limit");
            add(op, "415", "The body is not `application/json`");
        }
        for layer in layers {
            match layer {
                Layer::Auth => {
                    add(op, "401", "No valid bearer token");
                    add(op, "403", "The token lacks the scope");
                }
                Layer::Timeout => add(op, "408", "The request took longer than the limit"),
            }
        }
        add(op, "500", "The store or the catalog failed");
    }
}

/// Every operation of `api`, mutably.
fn operations(api: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

/// The JSON document of error responses (`request_id` inside `error`).
const ERROR_BODY: &str = "#/components/schemas/ErrorBody";

/// Documents what the request-id layer (`crate::ids`) and the job routes add
/// to responses: the `X-Request-Id` header on every response, `request_id`
/// at the top of every JSON document that is not an error (an error carries
/// it inside `error`), and `Location` on 201 and 202 answers.
///
/// A response document `X` becomes the component `XResponse`: a copy of `X`
/// with `request_id` required. `X` itself stays as it is, since a job inside
/// a list or an event has no `request_id` of its own. A copy rather than an
/// `allOf`, so that tools reading the response's properties (schemathesis
/// follows ids from one answer into the next request) still see them.
pub fn document_response_additions(api: &mut OpenApi) {
    let id_property = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(crate::ids::ID_PATTERN))
            .description(Some("The request's id (also in `X-Request-Id`)"))
    };
    let with_id = |schema: &mut Object| {
        schema
            .properties
            .insert("request_id".to_owned(), id_property().into());
        schema.required.push("request_id".to_owned());
    };
    let objects: BTreeSet<String> = api
        .components
        .iter()
        .flat_map(|c| &c.schemas)
        .filter(|(_, s)| matches!(s, RefOr::T(Schema::Object(_))))
        .map(|(name, _)| name.clone())
        .collect();
    let mut copies = BTreeSet::new();
    for op in operations(api) {
        for (status, response) in &mut op.responses.responses {
            let RefOr::T(response) = response else {
                continue;
            };
            response.headers.insert(
                "X-Request-Id".to_owned(),
                HeaderBuilder::new()
                    .schema(Some(id_property()))
                    .description(Some(
                        "The client's id when it sent a sane one, else one made here",
                    ))
                    .build()
                    .into(),
            );
            if status == "201" || status == "202" {
                response.headers.insert(
                    "Location".to_owned(),
                    HeaderBuilder::new()
                        .description(Some("The job, or the stored backup for an upload"))
                        .build()
                        .into(),
                );
            }
            let Some(RefOr::T(content)) = response.content.get_mut("application/json") else {
                continue;
            };
            match &mut content.schema {
                Some(RefOr::Ref(r)) if r.ref_location != ERROR_BODY => {
                    let name = r.ref_location.trim_start_matches("#/components/schemas/");
                    if objects.contains(name) {
                        copies.insert(name.to_owned());
                        *r = Ref::from_schema_name(format!("{name}Response"));
                    }
                }
                Some(RefOr::T(Schema::Object(inline))) => with_id(inline),
                _ => {}
            }
        }
    }
    let Some(components) = api.components.as_mut() else {
        return;
    };
    for name in copies {
        let Some(RefOr::T(Schema::Object(original))) = components.schemas.get(&name) else {
            continue;
        };
        let mut copy = original.clone();
        with_id(&mut copy);
        components
            .schemas
            .insert(format!("{name}Response"), RefOr::T(Schema::Object(copy)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_schemas_list_the_library_names() {
        let json = serde_json::to_value(requested_backup_kind()).unwrap();
        assert_eq!(
            json["enum"],
            serde_json::json!(["manual", "scheduled", "pre_deploy", null])
        );
        let json = serde_json::to_value(job_state()).unwrap();
        assert_eq!(json["type"], "string");
        assert_eq!(json["enum"].as_array().unwrap().len(), JobState::ALL.len());
    }
}
