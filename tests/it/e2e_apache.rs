//! End to end: the `remo` client → real Apache → remod, both ways Apache
//! can front it: mod_proxy_fcgi to remod's socket
//! (`apache/remo-proxy-fcgi.conf`), and mod_fcgid spawning remod with a
//! listening socket on fd 0 (`apache/remo-fcgid.conf`, `apache/remod.fcgi`).

use crate::common;

use common::*;

#[test]
fn remo_through_apache_proxy_fcgi() {
    let scratch = Scratch::new("apache-proxy");
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut apache, url) = start_apache(&scratch, ApacheFront::ProxyFcgi { sock: &sock }, &data);
    let c = Client::new(&scratch, &url, &data);

    check_raw_session(&url, &data);
    check_basics(&c, &data);
    check_streaming(&c);
    check_big_file(&c, &scratch, &scratch.sub("remote"), BIG_FILE);
    check_logout(&c);

    apache.assert_running();
    remod.assert_running();
}

/// Smoke test: mod_fcgid runs remod as www-data, one request at a time, and
/// spools uploads, so a smaller file.
#[test]
fn remo_through_apache_fcgid() {
    let scratch = Scratch::new("apache-fcgid");
    let data = init_data_dir(&scratch, "alice");
    // remod runs as Apache's user: it must own its data directory.
    chown_tree(&data.dir, "www-data");
    let remote = scratch.sub("remote");
    chown_tree(&remote, "www-data");
    let (mut apache, url) = start_apache(&scratch, ApacheFront::Fcgid, &data);
    let c = Client::new(&scratch, &url, &data);

    check_raw_session(&url, &data);
    check_basics(&c, &data);
    let r = c.ok(&["exec", "id", "-un"], None);
    assert_eq!(
        r.out().trim(),
        "www-data",
        "mod_fcgid runs remod as Apache's user"
    );
    check_streaming(&c);
    check_big_file(&c, &scratch, &remote, 16 << 20);
    check_logout(&c);

    apache.assert_running();
}
