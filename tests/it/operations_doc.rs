//! docs/operations.md is made from the operation types (`remod schema
//! --markdown`); it must not drift from them. To update it:
//! `cargo run --bin remod -- schema --markdown > docs/operations.md`.

// Test harness: a failed unwrap is a failed test.

use std::process::Command;

fn remod_schema(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_remod"))
        .arg("schema")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn operations_doc_matches_the_types() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let made = remod_schema(&["--markdown"]);
    assert!(
        doc == made,
        "docs/operations.md differs from the types in src/ops/; run \
         `cargo run --bin remod -- schema --markdown > docs/operations.md`"
    );
}

#[test]
fn the_schema_names_every_operation_with_its_fields() {
    let v: serde_json::Value = serde_json::from_str(&remod_schema(&[])).unwrap();
    let ops = v.as_object().unwrap();
    let names: Vec<&str> = ops.keys().map(String::as_str).collect();
    for n in [
        "cmd", "get", "put", "logout", "icm", "idt", "edt", "kill", "resize", "config", "open",
        "list", "admin",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    assert_eq!(names.len(), 13);
    // The descriptors refuse unknown fields; the schema says so.
    let put = &v["put"]["descriptor"];
    assert_eq!(put["additionalProperties"], serde_json::Value::Bool(false));
    assert_eq!(put["required"], serde_json::json!(["path"]));
    assert!(v["cmd"]["result"]["properties"]["timed_out"].is_object());
    assert!(v["get"]["result"]["properties"]["sha256"].is_object());
    // `list` also describes its data lines.
    assert_eq!(
        v["list"]["descriptor"]["required"],
        serde_json::json!(["path"])
    );
    assert!(v["list"]["result"]["properties"]["truncated"].is_object());
    assert!(v["list"]["data"]["properties"]["target"].is_object());
    // `admin`: one operation, its actions tagged by `action`.
    assert!(v["admin"]["result"]["properties"]["rows"].is_object());
    assert!(v["admin"]["descriptor"].to_string().contains("\"disable\""));
}
