//! The `admin` operation and `remo admin` against the real binaries
//! (`remod serve --http`, users made with `remod user add`): every action
//! for an admin, `forbidden` for everyone else (spoken directly in the
//! protocol, so no client check is in the way), a disable that ends the
//! user's other live session at once, the audit log's filters and pages,
//! and the admin actions themselves in it.

use serde_json::{json, Value};

use crate::common::*;

/// A user `name` with `grants`, made as the docs say, as a [`DataDir`]
/// (for [`RawSession::login`]) and a [`Client`].
fn user(
    scratch: &Scratch,
    url: &str,
    data: &DataDir,
    name: &str,
    grants: &[&str],
) -> (DataDir, Client) {
    let d = user_data_dir(scratch, data, name, grants);
    let c = Client::new(scratch, url, &d);
    (d, c)
}

/// One `admin` request: its result object.
fn admin(s: &mut RawSession, d: Value) -> Value {
    let (status, o) = s.request("admin", d.to_string().as_bytes());
    assert_eq!(status, 200, "admin {d}");
    let o = o.unwrap();
    assert!(o.data.is_empty() && o.stderr.is_empty());
    serde_json::from_str(&o.result).unwrap()
}

/// A `cmd` in session `s`: the HTTP status.
fn cmd_status(s: &mut RawSession) -> u16 {
    s.request("cmd", br#"{"argv":["/usr/bin/true"]}"#).0
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// Every action for an admin, `forbidden` for a user without the grant,
/// a disable ending the other live session, an end, and the audit of it all.
#[test]
fn admin_actions_for_admins_only() {
    let scratch = Scratch::new("admin-ops");
    let (_remod, url, data) = start_remod_http(&scratch);
    let (bob_dir, bob) = user(&scratch, &url, &data, "bob", &["cmd"]);
    let (carol_dir, _) = user(&scratch, &url, &data, "carol", &["sh", "config:*"]);
    let mut a = RawSession::login(&url, &data);
    let mut b = RawSession::login(&url, &bob_dir);
    let mut c = RawSession::login(&url, &carol_dir);

    // A user without the grant: forbidden for every action, and nothing
    // changes (carol is still there and enabled, her session lives).
    let carol_tag = {
        let v = admin(&mut a, json!({"action": "sessions", "user": "carol"}));
        v["sessions"][0]["id"].as_str().unwrap().to_string()
    };
    let attempts = [
        json!({"action": "users"}),
        json!({"action": "disable", "name": "carol"}),
        json!({"action": "enable", "name": "carol"}),
        json!({"action": "sessions"}),
        json!({"action": "end", "id": carol_tag}),
        json!({"action": "audit"}),
    ];
    for d in &attempts {
        let v = admin(&mut b, d.clone());
        assert_eq!(v["ok"], false, "{d}: {v}");
        assert_eq!(code(&v), "forbidden", "{d}: {v}");
    }
    assert_eq!(
        cmd_status(&mut c),
        200,
        "carol's session survived bob's attempts"
    );

    // users: everyone, with grants and live sessions.
    let v = admin(&mut a, json!({"action": "users"}));
    assert_eq!(v["ok"], true, "{v}");
    let users = v["users"].as_array().unwrap();
    let names: Vec<&str> = users.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "bob", "carol"]);
    assert_eq!(users[2]["grants"], json!(["config:*", "sh"]));
    assert_eq!(users[2]["enabled"], true);
    assert_eq!(users[1]["sessions"], 1);
    assert!(v.get("next").is_none(), "{v}");
    let v = admin(
        &mut a,
        json!({"action": "users", "limit": 1, "after": "admin"}),
    );
    assert_eq!(v["users"][0]["name"], "bob", "{v}");
    assert_eq!(v["next"], "bob", "{v}");

    // sessions: by tag, never the id; the caller's own is marked.
    let (_, o) = a.request("admin", br#"{"action":"sessions"}"#);
    let raw = o.unwrap().result;
    for sid in [a.sid(), b.sid(), c.sid()] {
        assert!(!raw.contains(sid), "a session id leaked: {raw}");
    }
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["total_sessions"], 3, "{v}");
    let list = v["sessions"].as_array().unwrap();
    let mine: Vec<&Value> = list.iter().filter(|s| s["yours"] == true).collect();
    assert_eq!(mine.len(), 1, "{v}");
    assert_eq!(mine[0]["user"], "admin");
    assert_eq!(list[0]["remote"], "127.0.0.1", "{v}");

    // Not oneself; an unknown user; a bad name.
    let v = admin(&mut a, json!({"action": "disable", "name": "admin"}));
    assert_eq!(code(&v), "bad_request", "{v}");
    let v = admin(&mut a, json!({"action": "disable", "name": "nobody"}));
    assert_eq!(code(&v), "not_found", "{v}");
    let v = admin(&mut a, json!({"action": "disable", "name": "../x"}));
    assert_eq!(code(&v), "bad_request", "{v}");

    // disable: bob's live session ends at once; he cannot log in.
    assert_eq!(cmd_status(&mut b), 200);
    let v = admin(&mut a, json!({"action": "disable", "name": "bob"}));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        cmd_status(&mut b),
        401,
        "bob's session outlived the disable"
    );
    assert_eq!(
        (v["name"].as_str(), v["ended"].as_u64()),
        (Some("bob"), Some(1))
    );
    let r = bob.run(&["exec", "/usr/bin/true"], None);
    assert_ne!(r.code, Some(0), "a disabled user logged in: {}", r.stderr);
    let v = admin(
        &mut a,
        json!({"action": "users", "after": "alice", "limit": 1}),
    );
    assert_eq!(v["users"][0]["enabled"], false, "{v}");
    // enable: back in.
    let v = admin(&mut a, json!({"action": "enable", "name": "bob"}));
    assert_eq!(
        (v["ok"].as_bool(), v["name"].as_str()),
        (Some(true), Some("bob"))
    );
    bob.ok(&["exec", "/usr/bin/true"], None);

    // end: carol's session (and only hers) ends.
    let v = admin(&mut a, json!({"action": "end", "id": carol_tag}));
    assert_eq!(v["ended"], 1, "{v}");
    assert_eq!(cmd_status(&mut c), 401, "carol's session outlived its end");
    assert_eq!(cmd_status(&mut a), 200);
    let v = admin(&mut a, json!({"action": "end", "id": carol_tag}));
    assert_eq!(code(&v), "not_found", "{v}");

    // audit: bob's refused attempts, by filter…
    let v = admin(
        &mut a,
        json!({"action": "audit", "user": "bob", "op": "admin", "outcome": "forbidden"}),
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), attempts.len(), "{v}");
    assert!(rows
        .iter()
        .all(|r| r["outcome"] == "forbidden" && r["user"] == "bob"));
    // …newest first…
    assert!(rows
        .windows(2)
        .all(|w| w[0]["id"].as_i64() > w[1]["id"].as_i64()));
    assert_eq!(rows[0]["summary"], "audit", "{v}");
    assert_eq!(rows[4]["summary"], "disable carol", "{v}");
    // …the admin's own actions, what they named included…
    let v = admin(
        &mut a,
        json!({"action": "audit", "user": "admin", "op": "admin", "outcome": "ok"}),
    );
    let sums: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["summary"].as_str().unwrap())
        .collect();
    for want in [
        "disable bob",
        "enable bob",
        &format!("end {carol_tag}"),
        "users",
        "sessions",
    ] {
        assert!(sums.contains(&want), "{want:?} not audited: {sums:?}");
    }
    // …the refused login of the disabled user (outcome by its first word)…
    let v = admin(
        &mut a,
        json!({"action": "audit", "user": "bob", "outcome": "auth-failed"}),
    );
    assert!(!v["rows"].as_array().unwrap().is_empty(), "{v}");
    // …the requests of the sessions that were ended (a session unknown
    // by then: no user), by the first word of their outcome…
    let v = admin(&mut a, json!({"action": "audit", "outcome": "401"}));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["outcome"], "401 unknown or expired session", "{v}");
    // …a time range…
    let v = admin(&mut a, json!({"action": "audit", "until": 1}));
    assert_eq!(v["rows"], json!([]), "{v}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let v = admin(
        &mut a,
        json!({"action": "audit", "since": now - 600, "until": now + 600, "user": "carol"}),
    );
    assert!(!v["rows"].as_array().unwrap().is_empty(), "{v}");
    // …and pages that add up to the whole, without overlap.
    let all = admin(&mut a, json!({"action": "audit", "user": "bob"}));
    let all: Vec<i64> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(all.len() > 5, "{all:?}");
    let mut paged = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut d = json!({"action": "audit", "user": "bob", "limit": 2});
        if let Some(b) = before {
            d["before"] = json!(b);
        }
        let v = admin(&mut a, d);
        let rows = v["rows"].as_array().unwrap();
        assert!(rows.len() <= 2, "{v}");
        paged.extend(rows.iter().map(|r| r["id"].as_i64().unwrap()));
        match v["next_before"].as_i64() {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let v = admin(&mut a, json!({"action": "audit", "limit": 0}));
    assert_eq!(code(&v), "bad_request", "{v}");
    let v = admin(&mut a, json!({"action": "audit", "secret": 1}));
    assert_eq!(code(&v), "bad_request", "{v}");
}

/// `[limits] admin_page_max` caps every page, whatever `limit` asks.
#[test]
fn admin_pages_are_capped_by_the_limit() {
    let scratch = Scratch::new("admin-cap");
    let (remod, url, data) = start_remod_http(&scratch);
    for n in ["u1", "u2", "u3", "u4"] {
        user(&scratch, &url, &data, n, &[]);
    }
    std::fs::write(data.dir.join("remo.toml"), "[limits]\nadmin_page_max = 2\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(remod.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    wait_log(&scratch.path().join("remod.log"), "reload done", 1);
    let mut a = RawSession::login(&url, &data);
    for _ in 0..3 {
        assert_eq!(cmd_status(&mut a), 200);
    }
    let v = admin(&mut a, json!({"action": "users", "limit": 1000}));
    assert_eq!(v["users"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["next"], "u1", "{v}");
    let v = admin(&mut a, json!({"action": "audit", "limit": 1000}));
    assert_eq!(v["rows"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["next_before"].is_i64(), "{v}");
    // Three sessions (u1's, u2's, the admin's): two listed, all counted.
    let mut others = Vec::new();
    for n in ["u1", "u2"] {
        let d = DataDir {
            user: n.to_string(),
            client_key: scratch.sub("keys").join(format!("{n}.key")),
            ..quick_data_dir(&data.dir)
        };
        others.push(RawSession::login(&url, &d));
    }
    let v = admin(&mut a, json!({"action": "sessions"}));
    assert_eq!(v["sessions"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        (v["total_sessions"].as_u64(), v["truncated"].as_bool()),
        (Some(3), Some(true)),
        "{v}"
    );
}

/// `remo admin`: the same through the client, as its docs show it.
#[test]
fn remo_admin_commands() {
    let scratch = Scratch::new("admin-cli");
    let (_remod, url, data) = start_remod_http(&scratch);
    let (bob_dir, bob) = user(&scratch, &url, &data, "bob", &["cmd"]);
    let adm = Client::new(&scratch, &url, &data);
    let mut b = RawSession::login(&url, &bob_dir);

    let out = adm.ok(&["admin", "users"], None).out();
    assert!(out.contains("admin") && out.contains("bob"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("bob") && l.contains("enabled") && l.ends_with("cmd")),
        "{out}"
    );

    let out = adm.ok(&["admin", "sessions", "--of", "bob"], None).out();
    assert!(out.contains("sessions: 1 (listed 1)"), "{out}");
    assert!(out.contains("127.0.0.1"), "{out}");

    // A non-admin is refused by the server.
    let r = bob.run(&["admin", "users"], None);
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr.contains("forbidden") || r.stderr.contains("admin grant"),
        "{}",
        r.stderr
    );

    let out = adm.ok(&["admin", "disable", "bob"], None).out();
    // Both of bob's sessions: the raw one and the client's cached one.
    assert!(
        out.contains("disabled bob; ended 2 live session(s)"),
        "{out}"
    );
    assert_eq!(cmd_status(&mut b), 401);
    let out = adm.ok(&["admin", "users"], None).out();
    assert!(
        out.lines()
            .any(|l| l.starts_with("bob") && l.contains("DISABLED")),
        "{out}"
    );
    adm.ok(&["admin", "enable", "bob"], None);
    bob.ok(&["exec", "/usr/bin/true"], None);

    let v: Value = serde_json::from_slice(
        &adm.ok(&["admin", "sessions", "--of", "bob", "--json"], None)
            .stdout,
    )
    .unwrap();
    let tag = v["sessions"][0]["id"].as_str().unwrap().to_string();
    let out = adm.ok(&["admin", "end", &tag], None).out();
    assert!(out.contains("ended 1 session(s)"), "{out}");
    let r = adm.run(&["admin", "end", &tag], None);
    assert_ne!(r.code, Some(0));

    let out = adm
        .ok(
            &[
                "admin",
                "audit",
                "--of",
                "bob",
                "--op",
                "admin",
                "--outcome",
                "forbidden",
                "--since",
                "1h",
            ],
            None,
        )
        .out();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(" bob ") && out.contains("forbidden") && out.contains("users"),
        "{out}"
    );
    let out = adm
        .ok(&["admin", "audit", "--op", "admin", "--limit", "2"], None)
        .out();
    let next = out.lines().last().unwrap();
    assert!(next.starts_with("next: --before "), "{out}");
    let cursor = next.trim_start_matches("next: --before ");
    let older = adm
        .ok(
            &[
                "admin", "audit", "--op", "admin", "--limit", "2", "--before", cursor,
            ],
            None,
        )
        .out();
    assert!(!older.is_empty() && older != out, "{older}");
    let r = adm.run(&["admin", "audit", "--since", "yesterday"], None);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
}
