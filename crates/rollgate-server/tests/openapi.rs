//! The OpenAPI document is kept in the repository (docs/openapi.json); this
//! test fails when the API changes without the document being updated.
//! Update it with `UPDATE_OPENAPI=1 cargo test -p rollgate-server --test openapi` (that run fails after
//! writing the new document; the next one checks it).

#[test]
fn the_committed_openapi_document_matches_the_api() {
    let generated = rollgate_server::api::openapi().to_pretty_json().unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("UPDATE_OPENAPI").is_some() && committed != generated {
        // Comparing the document with itself would prove nothing: write it, and fail this run.
        std::fs::write(&path, &generated).unwrap();
        panic!("docs/openapi.json was out of date and has been rewritten: review and commit it, then run again");
    }
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run UPDATE_OPENAPI=1 cargo test -p rollgate-server --test openapi and commit it"
    );
    let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"].as_object().unwrap().len() >= 20);
}
