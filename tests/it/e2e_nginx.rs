//! End to end: the `remo` client → real nginx (rendered `nginx/remo.conf`)
//! → `remod serve --fcgi unix:…`.

use crate::common;

use common::*;

#[test]
fn remo_through_nginx() {
    let scratch = Scratch::new("nginx");
    let data = init_data_dir(&scratch, "alice");
    let (mut remod, sock) = start_remod_fcgi(&scratch, &data);
    let (mut nginx, url) = start_nginx(&scratch, &sock, &data);
    let c = Client::new(&scratch, &url, &data);

    check_raw_session(&url, &data);
    check_basics(&c, &data);
    check_streaming(&c);
    check_big_file(&c, &scratch, &scratch.sub("remote"), BIG_FILE);
    check_logout(&c);

    nginx.assert_running();
    remod.assert_running();
}
